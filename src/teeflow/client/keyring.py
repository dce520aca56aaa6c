"""The member's local keyring: an Ed25519 signing key and an X25519 receiving key.

Layout under the root ($TEEFLOW_HOME, default ~/.teeflow; directory mode 0700, files 0600)::

    keys.json          both private keys, sealed under the passphrase (or stored plain without
                       one), and the public halves in clear so ``public()`` needs no passphrase
    policy.json        the member's attestation policy       (reserved, written elsewhere)
    credentials.json   the member's server credentials       (reserved, written elsewhere)

With a passphrase, the two raw private keys are encrypted with AES-256-GCM under a key derived
by scrypt (RFC 7914; N=2^17, r=8, p=1 by default, the OWASP recommendation). Every other field
of keys.json is the associated data, so an edited public key or KDF parameter fails like a wrong
passphrase. (PKCS#8 PEM via ``BestAvailableEncryption`` would use PBKDF2 with 2048 rounds,
too few against offline guessing.)
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from teeflow.crypto import (
    CryptoError,
    PrivateKey,
    PublicKey,
    SigningKey,
    VerifyKey,
    b64d,
    b64e,
    canonical_json,
    fingerprint,
)

__all__ = [
    "Keyring",
    "KeyringError",
    "KeyringExistsError",
    "KeyringNotFoundError",
    "MemberKeys",
    "MemberPublicKeys",
    "PassphraseError",
    "default_home",
    "write_private_file",
]

KEYS_FILE = "keys.json"
_TYPE = "teeflow.member-keys"
_VERSION = 1
SCRYPT_N = 1 << 17
_SCRYPT_R, _SCRYPT_P = 8, 1
_MAX_SCRYPT_N = 1 << 20  # a bound on the work a (possibly edited) keys.json can demand


class KeyringError(Exception):
    """The keyring is missing, exists already, is damaged, or the passphrase is wrong."""


class KeyringExistsError(KeyringError):
    """``init`` would overwrite existing keys."""


class KeyringNotFoundError(KeyringError):
    """No keys have been created in this keyring yet."""


class PassphraseError(KeyringError):
    """The passphrase is wrong, missing, or given for keys stored without one."""


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """$TEEFLOW_HOME if set, else ~/.teeflow."""
    env = os.environ if environ is None else environ
    home = env.get("TEEFLOW_HOME")
    return Path(home).expanduser() if home else Path.home() / ".teeflow"


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600 and fsync it.

    Without ``overwrite`` the file is created exclusively (FileExistsError if it exists); with
    it, the new content goes to a temp file renamed over ``path``, so readers never see half.
    """
    target = path.with_name(f".{path.name}.{os.getpid()}.tmp") if overwrite else path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o600)  # whatever the umask
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            target.replace(path)
        done = True
    finally:
        if not done:
            target.unlink(missing_ok=True)


@dataclass(frozen=True)
class MemberPublicKeys:
    """The public halves, readable without the passphrase."""

    verify_key: VerifyKey
    public_key: PublicKey
    encrypted: bool

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.verify_key, self.public_key)


@dataclass(frozen=True, repr=False)
class MemberKeys:
    """A member's unlocked key pairs. ``repr`` shows only the fingerprint."""

    signing_key: SigningKey
    receiving_key: PrivateKey

    @property
    def verify_key(self) -> VerifyKey:
        return self.signing_key.verify_key

    @property
    def public_key(self) -> PublicKey:
        return self.receiving_key.public_key

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.verify_key, self.public_key)

    def __repr__(self) -> str:
        return f"MemberKeys(fingerprint={self.fingerprint})"


def _kek(passphrase: str, salt: bytes, n: int) -> bytes:
    # NFC so the same passphrase typed on different systems derives the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=32, n=n, r=_SCRYPT_R, p=_SCRYPT_P).derive(secret)


class Keyring:
    """The keyring in ``root`` (default: :func:`default_home`)."""

    def __init__(self, root: Path | None = None, *, scrypt_n: int = SCRYPT_N) -> None:
        self.root = default_home() if root is None else Path(root)
        self._scrypt_n = scrypt_n

    @property
    def keys_path(self) -> Path:
        return self.root / KEYS_FILE

    @property
    def policy_path(self) -> Path:
        """Where the member's attestation policy lives (written by the attestation client)."""
        return self.root / "policy.json"

    @property
    def credentials_path(self) -> Path:
        """Where the member's server credentials live (written by the server client)."""
        return self.root / "credentials.json"

    def exists(self) -> bool:
        return self.keys_path.exists()

    def init(self, passphrase: str | None, *, force: bool = False) -> MemberPublicKeys:
        """Create fresh keys; refuses to replace existing ones unless ``force``."""
        if passphrase == "":
            raise PassphraseError("the passphrase is empty; give one, or none to store keys plain")
        if self.exists() and not force:
            raise KeyringExistsError(
                f"keys already exist in {self.root}; use force to replace them (irreversible)"
            )
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        signing, receiving = SigningKey.generate(), PrivateKey.generate()
        document: dict[str, Any] = {
            "type": _TYPE,
            "version": _VERSION,
            "signing_public_key": signing.verify_key.b64(),
            "receiving_public_key": receiving.public_key.b64(),
        }
        secret = signing.to_bytes() + receiving.to_bytes()
        if passphrase is None:
            document["protection"] = {"kdf": "none"}
            document["secret"] = b64e(secret)
        else:
            salt, nonce = os.urandom(16), os.urandom(12)
            document["protection"] = {
                **{"kdf": "scrypt", "n": self._scrypt_n, "r": _SCRYPT_R, "p": _SCRYPT_P},
                **{"salt": b64e(salt), "aead": "AES-256-GCM", "nonce": b64e(nonce)},
            }
            kek = _kek(passphrase, salt, self._scrypt_n)
            sealed = AESGCM(kek).encrypt(nonce, secret, canonical_json(document))
            document["secret"] = b64e(sealed)
        data = json.dumps(document, indent=2).encode("utf-8") + b"\n"
        write_private_file(self.keys_path, data, overwrite=force)
        return self.public()

    def public(self) -> MemberPublicKeys:
        """The public keys and fingerprint; needs no passphrase."""
        document = self._read()
        try:
            return MemberPublicKeys(
                verify_key=VerifyKey.from_b64(document["signing_public_key"]),
                public_key=PublicKey.from_b64(document["receiving_public_key"]),
                encrypted=document["protection"]["kdf"] != "none",
            )
        except (KeyError, TypeError, CryptoError) as exc:
            raise KeyringError(f"{self.keys_path} is damaged (bad public key fields)") from exc

    def load(self, passphrase: str | None) -> MemberKeys:
        """Unlock the private keys. PassphraseError if it is wrong, missing or not needed."""
        document = self._read()
        try:
            protection = document["protection"]
            stored = b64d(document["secret"])
            kdf = protection["kdf"]
        except (KeyError, TypeError, CryptoError) as exc:
            raise KeyringError(f"{self.keys_path} is damaged (bad secret fields)") from exc
        if kdf == "none":
            if passphrase is not None:
                raise PassphraseError("these keys are stored without a passphrase; do not give one")
            secret = stored
        elif kdf == "scrypt":
            if passphrase is None:
                raise PassphraseError(f"the keys in {self.root} need a passphrase")
            secret = self._unlock(document, protection, stored, passphrase)
        else:
            raise KeyringError(f"{self.keys_path} uses an unknown protection {kdf!r}")
        try:
            keys = MemberKeys(
                SigningKey.from_bytes(secret[:32]), PrivateKey.from_bytes(secret[32:])
            )
        except (CryptoError, ValueError) as exc:
            raise KeyringError(f"{self.keys_path} is damaged (bad private keys)") from exc
        public = self.public()
        if (keys.verify_key, keys.public_key) != (public.verify_key, public.public_key):
            raise KeyringError(f"{self.keys_path} is damaged (public keys do not match)")
        return keys

    def _unlock(
        self, document: dict[str, Any], protection: dict[str, Any], stored: bytes, passphrase: str
    ) -> bytes:
        try:
            n = int(protection["n"])
            salt, nonce = b64d(protection["salt"]), b64d(protection["nonce"])
            fixed = (protection["r"], protection["p"], protection["aead"])
        except (KeyError, TypeError, ValueError, CryptoError) as exc:
            raise KeyringError(f"{self.keys_path} is damaged (bad KDF parameters)") from exc
        if fixed != (_SCRYPT_R, _SCRYPT_P, "AES-256-GCM") or not 1 < n <= _MAX_SCRYPT_N:
            raise KeyringError(f"{self.keys_path} has unsupported KDF parameters")
        aad = canonical_json({k: v for k, v in document.items() if k != "secret"})
        try:
            return AESGCM(_kek(passphrase, salt, n)).decrypt(nonce, stored, aad)
        except (InvalidTag, ValueError) as exc:
            raise PassphraseError(
                f"wrong passphrase for the keys in {self.root} (or keys.json was changed)"
            ) from exc

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.keys_path.read_bytes()
        except FileNotFoundError as exc:
            raise KeyringNotFoundError(
                f"no keys in {self.root}; create them with `teeflow keys init`"
            ) from exc
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KeyringError(f"{self.keys_path} is not valid JSON") from exc
        if not isinstance(document, dict) or document.get("type") != _TYPE:
            raise KeyringError(f"{self.keys_path} is not a teeflow keyring file")
        if document.get("version") != _VERSION:
            raise KeyringError(
                f"{self.keys_path} has unsupported version {document.get('version')}"
            )
        return document
