"""Test entry point: the key service with the FAKE hardware verifier injected.

``python tests/tee/keyservice_fake.py --fake-root HEX <teeflow.keyservice arguments>``. Production
(``python -m teeflow.keyservice``) has no way to take this verifier.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tee.fakes import FakeHardwareVerifier
from teeflow.crypto import VerifyKey
from teeflow.keyservice.__main__ import parser, serve

if __name__ == "__main__":
    parse = parser()
    parse.add_argument("--fake-root", required=True, help="hex Ed25519 key of the fake hardware")
    args = parse.parse_args()
    serve(args, FakeHardwareVerifier(VerifyKey(bytes.fromhex(args.fake_root))))
