"""Member SDK: seal and upload, attest, review and approve, download and decrypt."""

from teeflow.client._client import Client, MemberKeys
from teeflow.client._errors import ApiError, ClientError
from teeflow.client._home import MemberHome

__all__ = ["ApiError", "Client", "ClientError", "MemberHome", "MemberKeys"]
