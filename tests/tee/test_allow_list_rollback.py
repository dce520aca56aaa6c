"""An operator rolls the key service's allow-list back: it restarts the real
``python -m teeflow.keyservice`` with an older list that every participant did sign (saved from
its own state directory) in place of the newer one that revoked a measurement.

Nothing on the host is a monotonic counter, so the key service cannot tell; a member who saw the
newer list in force is told, by name, when it looks again (docs/key-release.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from teeflow.cli.main import app
from teeflow.client import Keyring
from teeflow.server.launcher import free_port

from .conftest import EXECUTOR_POLICY, key_service_process

MEASUREMENT = "2e" * 48


def _cli(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"TEEFLOW_HOME": str(home)})
    return result.exit_code, result.output


def _signed(homes: list[Path], path: Path, *args: str) -> None:
    code, out = _cli(homes[0], "enclave", "allow-list", "propose", "--out", str(path), *args)
    assert code == 0, out
    for home in homes:
        assert _cli(home, "enclave", "allow-list", "sign", str(path))[0] == 0


def test_a_rolled_back_allow_list_is_reported_to_a_member_who_saw_the_newer_one(
    tmp_path: Path,
) -> None:
    homes = [tmp_path / "home-alice", tmp_path / "home-bank"]
    for home in homes:
        Keyring(home).init(None)
    data = tmp_path / "kbs"
    data.mkdir()
    (data / "signers.txt").write_text(
        "".join(Keyring(h).public().verify_key.b64() + "\n" for h in homes)
    )
    (data / "policy.json").write_text(json.dumps(EXECUTOR_POLICY.to_dict()))
    port, log = free_port(), tmp_path / "kbs.log"
    first, second = tmp_path / "v1.json", tmp_path / "v2.json"
    _signed(homes, first, "--version", "1", "--entry", f"tdx:{MEASUREMENT}:1")
    _signed(homes, second, "--version", "2", "--entry", f"tdx:{'3f' * 48}:1",
            "--revoke", MEASUREMENT)  # fmt: skip

    with key_service_process(data, port, log) as url:
        for document in (first, second):
            code, out = _cli(homes[1], "enclave", "allow-list", "submit", str(document),
                             "--server", url)  # fmt: skip
            assert code == 0, out
        code, out = _cli(homes[0], "enclave", "allow-list", "show", "--server", url, "--json")
        assert code == 0 and json.loads(out)["revoked"] == [MEASUREMENT]
        installed = data / "state" / "allow-list.json"
        assert json.loads(installed.read_text())["body"]["version"] == 2

    # The operator puts the older signed list back and restarts the service.
    shutil.copy(first, installed)
    with key_service_process(data, port, log) as url:
        code, out = _cli(homes[0], "enclave", "allow-list", "show", "--server", url, "--json")
        assert code != 0
        assert "version 1, older than version 2" in out and "rolled back" in out
        # A member who only ever submitted version 2 is told too; proposing on top refuses.
        again = ("--entry", f"tdx:{MEASUREMENT}:1", "--out", str(tmp_path / "v.json"))
        code, out = _cli(homes[1], "enclave", "allow-list", "propose", "--server", url, *again)
        assert code != 0 and "rolled back" in out
        # Deleting the list altogether is a rollback as well.
        installed.unlink()
    with key_service_process(data, port, log) as url:
        code, out = _cli(homes[0], "enclave", "allow-list", "show", "--server", url)
        assert code != 0 and "version 0, older than version 2" in out
