"""The key service's process: HTTP around the trusted core in :mod:`teeflow.enclave.keyservice`.

Not trusted (like teeflow.executor): every byte it passes in is checked by the core, and what it
passes out is sealed to an attested executor. See docs/key-release.md.
"""

from teeflow.keyservice.app import SESSION_COOKIE, create_keyservice_app

__all__ = ["SESSION_COOKIE", "create_keyservice_app"]
