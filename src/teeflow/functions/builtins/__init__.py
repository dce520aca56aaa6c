"""Built-in functions. Each catalog module registers its built-ins with the registry on import."""

from teeflow.functions.builtins import catalog_basic, catalog_dl

__all__ = ["catalog_basic", "catalog_dl"]
