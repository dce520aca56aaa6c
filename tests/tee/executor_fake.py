"""Test entry point: an executor process whose ``/dev/sev-guest`` is the FAKE SEV-SNP firmware.

``python tests/tee/executor_fake.py --fake-root HEX --measurement HEX --sev-guest PATH
<interpreter> -m teeflow.executor <executor arguments>`` (it is a launcher ``prefix``; the
interpreter and ``-m teeflow.executor`` it is given are replaced by this process). The executor
opens the device at its ``--sev-guest`` path; an ioctl on PATH is answered by
:class:`FakeSevGuest` for a fake CPU with that root and measurement, as the kernel would, and each
request is appended to ``PATH.requests``. Any other path is the real device. Production
(``python -m teeflow.executor``) has no way to take this fake.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tee.fakes import FakeHardware, FakeSevGuest
from teeflow.attestation import SevGuestFile
from teeflow.crypto import SigningKey
from teeflow.executor import __main__ as executor_main
from teeflow.executor import keyrelease


def main() -> int:
    parse = argparse.ArgumentParser(prog="executor_fake")
    parse.add_argument("--fake-root", required=True, help="hex private key of the fake root")
    parse.add_argument("--measurement", required=True, help="hex measurement of the fake guest")
    parse.add_argument("--sev-guest", required=True, type=Path, help="the fake device's path")
    argv = sys.argv[1:]
    at = next(
        (i for i in range(1, len(argv)) if argv[i : i + 2] == ["-m", "teeflow.executor"]), None
    )
    if at is None:
        raise SystemExit("executor_fake: expected <interpreter> -m teeflow.executor ARGS after")
    ours, rest = parse.parse_args(argv[: at - 1]), argv[at + 2 :]
    hardware = FakeHardware(
        "sev-snp",
        bytes.fromhex(ours.measurement),
        root=SigningKey.from_bytes(bytes.fromhex(ours.fake_root)),
    )
    fake, log = FakeSevGuest(hardware), ours.sev_guest.with_name(ours.sev_guest.name + ".requests")
    log.parent.mkdir(parents=True, exist_ok=True)

    class Device(SevGuestFile):
        def ioctl(self, request: int, arg: bytearray) -> None:
            if self._path != ours.sev_guest:
                super().ioctl(request, arg)
                return
            fake.ioctl(request, arg)
            with log.open("a") as handle:
                handle.write(f"{fake.requests[-1]}\n")

    keyrelease.SevGuestFile = Device  # type: ignore[misc]
    return executor_main.main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
