"""The member's web console (``teeflow console``): a local web app on the member's machine.

Signing, key unwrapping and decryption stay in this process, behind ``teeflow.Client``; the
browser reaches it on 127.0.0.1 with a per-launch token, and every change needs a CSRF token.
"""

from teeflow.console._security import CSP, LaunchSecrets
from teeflow.console.app import create_app

__all__ = ["CSP", "LaunchSecrets", "create_app"]
