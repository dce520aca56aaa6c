"""The catalogue of built-in functions the enclave offers.

A built-in is named in a contract by ``name`` and ``code_sha256`` (the SHA-256 of the module that
implements it), so a contract pins the exact code as well as the measurement that contains it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teeflow.functions.api import Context
from teeflow.functions.declarations import Signature, describe_signature
from teeflow.functions.outputs import OutputDeclaration
from teeflow.functions.serving import OpenSession

__all__ = ["Builtin", "builtin_catalogue", "get_builtin", "preload_builtins"]

RunFn = Callable[[Context], None]
_IMPORT_LOCK = threading.Lock()


@functools.cache
def _source_sha256(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Builtin:
    """A built-in function and what it declares about its slots and arguments."""

    name: str
    summary: str
    module: str
    """Dotted module holding ``run(ctx)``."""
    inputs: str
    """Human description of the input slots it accepts (e.g. "one or more tables")."""
    outputs: tuple[str, ...]
    """Output slot names it writes; a name ending in ``*`` is a prefix (e.g. ``flags:*``)."""
    signature: Signature = field(default_factory=Signature)
    """Its typed arguments and input slots (functions/declarations.py), checked by a member's
    client before a proposal is sent and by the enclave before a task runs."""
    min_inputs: int = 1
    max_inputs: int | None = None
    declarations: dict[str, OutputDeclaration] = field(default_factory=dict)
    """Output slot name (or ``prefix*`` pattern, as in ``outputs``) -> its kind and size bound
    (functions/outputs.py); the enclave refuses an output that breaks it."""
    session: bool = False
    """Serves an inference session (``open_session(ctx)``, see functions/serving.py) instead of
    running once; the executor hands it requests until the session ends."""

    @property
    def arguments(self) -> dict[str, str]:
        """Argument name -> meaning (from the signature)."""
        return {arg.name: arg.meaning for arg in self.signature.arguments}

    def load(self) -> RunFn:
        module = importlib.import_module(self.module)
        run: RunFn = module.run
        return run

    def load_session(self) -> OpenSession:
        """The ``open_session`` of a session built-in (see functions/serving.py)."""
        if not self.session:
            raise KeyError(f"built-in {self.name!r} does not serve inference sessions")
        with _IMPORT_LOCK:
            module = importlib.import_module(self.module)
        open_session: OpenSession = module.open_session
        return open_session

    @property
    def code_sha256(self) -> str:
        """SHA-256 of the implementing module's source file (found without importing it); read
        once per process, as the code it names is loaded once."""
        digest = _source_sha256(self.module)
        if digest is None:
            raise KeyError(f"built-in {self.name!r}: module {self.module} is missing")
        return digest

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "inputs": self.inputs,
            "outputs": list(self.outputs),
            "arguments": dict(self.arguments),
            "signature": describe_signature(self.signature),
            "min_inputs": self.min_inputs,
            "max_inputs": self.max_inputs,
            "session": self.session,
            "output_declarations": {
                slot: declaration.describe() for slot, declaration in self.declarations.items()
            },
            "code_sha256": self.code_sha256,
            "kind": "builtin",
        }


_CATALOGUE: dict[str, Builtin] = {}


def register(builtin: Builtin) -> None:
    _CATALOGUE[builtin.name] = builtin


def builtin_catalogue() -> dict[str, Builtin]:
    """Every built-in, by name (importing the modules that declare them)."""
    importlib.import_module("teeflow.functions.builtins")
    return dict(_CATALOGUE)


def get_builtin(name: str) -> Builtin:
    catalogue = builtin_catalogue()
    try:
        return catalogue[name]
    except KeyError:
        known = ", ".join(sorted(catalogue))
        raise KeyError(f"no built-in function named {name!r}; known: {known}") from None


def preload_builtins() -> None:
    """Import every built-in's code now (PaddlePaddle included: seconds), so that a task does not
    pay for it. An executor calls this once at start, before it takes work.

    Call it from the thread that will run the functions: PaddlePaddle keeps its mode (dynamic
    graph) per thread and sets it in the importing thread only.
    """
    for builtin in builtin_catalogue().values():
        builtin.load()
