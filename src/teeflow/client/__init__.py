"""Member SDK: seal and upload, attest, review and approve, download and decrypt, infer."""

from teeflow.client._client import Client, public_keys
from teeflow.client._errors import ApiError, ClientError, InferenceError
from teeflow.client._home import MemberHome
from teeflow.client._inference import SessionClient
from teeflow.client.keyring import Keyring, MemberKeys

__all__ = [
    "ApiError",
    "Client",
    "ClientError",
    "InferenceError",
    "Keyring",
    "MemberHome",
    "MemberKeys",
    "SessionClient",
    "public_keys",
]
