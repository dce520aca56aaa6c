"""SEV-SNP derived keys through Linux's ``/dev/sev-guest`` (``SNP_GET_DERIVED_KEY`` ioctl).

The request is the firmware's MSG_KEY_REQ (SEV-SNP ABI, AMD 56860, "MSG_KEY_REQ" and
"MSG_KEY_RSP") wrapped in the kernel's ``struct snp_guest_request_ioctl``
(include/uapi/linux/sev-guest.h)::

    struct snp_guest_request_ioctl {          // 32 bytes
        __u8  msg_version;                    // 1
        __u64 req_data;                       // -> struct snp_derived_key_req (32 bytes)
        __u64 resp_data;                      // -> struct snp_derived_key_resp (64 bytes)
        __u64 exitinfo2;                      // fw_error | vmm_error << 32, on failure
    };
    struct snp_derived_key_req {
        __u32 root_key_select;                // 0: VCEK, 1: VMRK
        __u32 rsvd;
        __u64 guest_field_select;             // bit 0 policy, 3 measurement, ...
        __u32 vmpl;
        __u32 guest_svn;
        __u64 tcb_version;
    };
    // resp data = MSG_KEY_RSP: status u32 @0, reserved, derived key (32 bytes) @0x20

The key is derived by the AMD secure processor from the chip's VCEK secret and the selected guest
fields; selecting the measurement (and guest policy) means another image, or a debug launch of
this one, gets another key. The device is behind :class:`SevGuestDevice` so tests can run the
same structure code against a fake.
"""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path
from typing import Protocol

from teeflow.attestation._errors import AttestationError

__all__ = [
    "FIELD_GUEST_POLICY",
    "FIELD_MEASUREMENT",
    "SNP_GET_DERIVED_KEY",
    "SevGuestDevice",
    "SevGuestFile",
    "parse_key_request",
    "snp_derived_key",
]

FIELD_GUEST_POLICY = 1 << 0
FIELD_MEASUREMENT = 1 << 3
_IOCTL_STRUCT = struct.Struct("<B7xQQQ")  # msg_version, req_data, resp_data, exitinfo2
_KEY_REQ = struct.Struct("<IIQIIQ")
_RESP_SIZE = 64
# _IOWR('S', 0x1, struct snp_guest_request_ioctl): dir 3 << 30 | size << 16 | type << 8 | nr.
SNP_GET_DERIVED_KEY = (3 << 30) | (_IOCTL_STRUCT.size << 16) | (ord("S") << 8) | 0x1


class SevGuestDevice(Protocol):
    def ioctl(self, request: int, arg: bytearray) -> None:
        """Issue ``request`` with the in/out ``arg`` struct; OSError on failure."""
        ...


class SevGuestFile:
    """The real ``/dev/sev-guest`` (opened per call)."""

    def __init__(self, path: Path = Path("/dev/sev-guest")) -> None:
        self._path = Path(path)

    def ioctl(self, request: int, arg: bytearray) -> None:
        import fcntl

        fd = os.open(self._path, os.O_RDWR)
        try:
            fcntl.ioctl(fd, request, arg, True)
        finally:
            os.close(fd)


def snp_derived_key(
    device: SevGuestDevice,
    *,
    fields: int = FIELD_GUEST_POLICY | FIELD_MEASUREMENT,
    vmpl: int = 0,
) -> bytes:
    """The 32-byte key MSG_KEY_REQ derives from the VCEK and ``fields`` of this guest.

    Raises AttestationError (code ``provider``) if the device refuses or the firmware answers
    with a non-zero status.
    """
    request = ctypes.create_string_buffer(_KEY_REQ.pack(0, 0, fields, vmpl, 0, 0), _KEY_REQ.size)
    response = ctypes.create_string_buffer(_RESP_SIZE)
    arg = bytearray(_IOCTL_STRUCT.pack(1, ctypes.addressof(request), ctypes.addressof(response), 0))
    try:
        device.ioctl(SNP_GET_DERIVED_KEY, arg)
    except OSError as exc:
        exitinfo2 = _IOCTL_STRUCT.unpack(bytes(arg))[3]
        raise AttestationError(
            f"SNP_GET_DERIVED_KEY failed ({exc.strerror or exc}; firmware error "
            f"{exitinfo2 & 0xFFFFFFFF:#x}); is this an SEV-SNP guest with the sev-guest driver?",
            code="provider",
        ) from exc
    raw = response.raw
    status = int.from_bytes(raw[0:4], "little")
    if status != 0:
        raise AttestationError(
            f"MSG_KEY_RSP status {status:#x}: the firmware refused to derive a key",
            code="provider",
        )
    return bytes(raw[0x20:0x40])


def parse_key_request(arg: bytes) -> tuple[int, int, int, int, int, int]:
    """(req_data address, resp_data address, root_key_select, fields, vmpl, guest_svn) of an
    ioctl argument, for a device fake: it reads the request at the address like the kernel."""
    version, req_addr, resp_addr, _ = _IOCTL_STRUCT.unpack(bytes(arg))
    if version != 1:
        raise OSError(22, "msg_version must be 1")
    root, _rsvd, fields, vmpl, svn, _tcb = _KEY_REQ.unpack(
        ctypes.string_at(req_addr, _KEY_REQ.size)
    )
    return req_addr, resp_addr, root, fields, vmpl, svn
