"""teeflow: confidential deep learning for parties that do not trust each other."""

from importlib import metadata as _metadata

__version__ = _metadata.version("teeflow")


def __getattr__(name: str) -> object:
    # The SDK is imported lazily so that the enclave and its measured modules never pull it in.
    if name == "Client":
        from teeflow.client import Client

        return Client
    raise AttributeError(name)


__all__ = ["Client", "__version__"]
