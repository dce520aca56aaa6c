"""teeflow's safe crypto layer: pure functions, no I/O beyond the streams handed in.

Everything that verifies or decrypts raises :class:`IntegrityError` on failure.
"""

from teeflow.crypto._digest import (
    BLAKE3,
    SHA256,
    ContentHasher,
    DigestAlgorithm,
    content_digest,
    content_digest_like,
    digest_algorithm,
    is_content_digest,
)
from teeflow.crypto._encoding import b64d, b64e, canonical_hash, canonical_json, sha256_hex
from teeflow.crypto._errors import CryptoError, IntegrityError
from teeflow.crypto._files import private_directory, read_or_create_secret
from teeflow.crypto._keys import (
    PrivateKey,
    PublicKey,
    SigningKey,
    VerifyKey,
    fingerprint,
    signed_message,
)
from teeflow.crypto._padding import check_pad, pad, unpad
from teeflow.crypto._seal import seal_stream
from teeflow.crypto._sealed import (
    CHUNK_SIZE,
    DataKey,
    SealedDigest,
    SealInfo,
    seal_bytes,
    unseal_bytes,
    unseal_stream,
)
from teeflow.crypto._stream import UnsealReader, sealed_plaintext_size
from teeflow.crypto._wrap import hpke_open, hpke_seal, key_wrap_info

__all__ = [
    "BLAKE3",
    "CHUNK_SIZE",
    "SHA256",
    "ContentHasher",
    "CryptoError",
    "DataKey",
    "DigestAlgorithm",
    "IntegrityError",
    "PrivateKey",
    "PublicKey",
    "SealInfo",
    "SealedDigest",
    "SigningKey",
    "UnsealReader",
    "VerifyKey",
    "b64d",
    "b64e",
    "canonical_hash",
    "canonical_json",
    "check_pad",
    "content_digest",
    "content_digest_like",
    "digest_algorithm",
    "fingerprint",
    "hpke_open",
    "hpke_seal",
    "is_content_digest",
    "key_wrap_info",
    "pad",
    "private_directory",
    "read_or_create_secret",
    "seal_bytes",
    "seal_stream",
    "sealed_plaintext_size",
    "sha256_hex",
    "signed_message",
    "unpad",
    "unseal_bytes",
    "unseal_stream",
]
