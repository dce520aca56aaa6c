"""Member SDK: seal and upload, attest, review and approve, download and decrypt."""

from teeflow.client._client import Client, public_keys
from teeflow.client._errors import ApiError, ClientError
from teeflow.client._home import MemberHome
from teeflow.client.keyring import Keyring, MemberKeys

__all__ = [
    "ApiError",
    "Client",
    "ClientError",
    "Keyring",
    "MemberHome",
    "MemberKeys",
    "public_keys",
]
