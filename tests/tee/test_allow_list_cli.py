"""``teeflow enclave allow-list``: participants sign the measurement allow-list with the member
keys in their own keyrings, and the key service (the real ``python -m teeflow.keyservice``
process) installs it only with every pinned participant's signature and a rising version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teeflow.cli.main import app
from teeflow.client import Keyring
from teeflow.server.launcher import free_port

from .conftest import EXECUTOR_POLICY, key_service_process

runner = CliRunner()
MEASUREMENT = "1d" * 48


@pytest.fixture
def homes(tmp_path: Path) -> dict[str, Path]:
    made = {}
    for name in ("alice", "bank"):
        Keyring(tmp_path / f"home-{name}").init(None)
        made[name] = tmp_path / f"home-{name}"
    return made


@pytest.fixture
def key_service(tmp_path: Path, homes: dict[str, Path]) -> Iterator[str]:
    data = tmp_path / "kbs"
    data.mkdir()
    signers = "".join(Keyring(h).public().verify_key.b64() + "\n" for h in homes.values())
    (data / "signers.txt").write_text(signers)
    (data / "policy.json").write_text(json.dumps(EXECUTOR_POLICY.to_dict()))
    with key_service_process(data, free_port(), tmp_path / "kbs.log") as url:
        yield url


def _cli(home: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"TEEFLOW_HOME": str(home)})
    return result.exit_code, result.output


def test_allow_list_needs_every_participants_signature(
    key_service: str, homes: dict[str, Path], tmp_path: Path
) -> None:
    doc = tmp_path / "list.json"
    alice, bank = homes["alice"], homes["bank"]

    code, out = _cli(alice, "enclave", "allow-list", "propose", "--server", key_service,
                     "--entry", f"tdx:{MEASUREMENT}:1", "--out", str(doc))  # fmt: skip
    assert code == 0, out
    assert json.loads(doc.read_text())["body"]["version"] == 1  # none in force yet

    assert _cli(alice, "enclave", "allow-list", "sign", str(doc))[0] == 0
    code, out = _cli(alice, "enclave", "allow-list", "submit", str(doc), "--server", key_service)
    assert code != 0 and "has not signed the allow-list" in out

    assert _cli(bank, "enclave", "allow-list", "sign", str(doc))[0] == 0
    code, out = _cli(bank, "enclave", "allow-list", "show", str(doc), "--json")
    shown = json.loads(out)
    assert sorted(shown["signed_by"]) == sorted(
        Keyring(h).public().verify_key.b64() for h in (alice, bank)
    )
    code, out = _cli(bank, "enclave", "allow-list", "submit", str(doc), "--server", key_service)
    assert code == 0 and "version 1 is in force" in out, out

    code, out = _cli(alice, "enclave", "allow-list", "show", "--server", key_service, "--json")
    assert code == 0 and json.loads(out)["entries"] == [f"tdx:{MEASUREMENT}:1"]

    # The same document again is not newer: an old list cannot be replayed.
    code, out = _cli(bank, "enclave", "allow-list", "submit", str(doc), "--server", key_service)
    assert code != 0 and "not newer" in out


def test_a_signature_over_another_body_is_refused(
    key_service: str, homes: dict[str, Path], tmp_path: Path
) -> None:
    """Bank signs, then someone changes the measurement: bank's signature no longer holds."""
    doc = tmp_path / "list.json"
    _cli(homes["alice"], "enclave", "allow-list", "propose", "--version", "1",
         "--entry", f"tdx:{MEASUREMENT}:1", "--out", str(doc))  # fmt: skip
    for home in homes.values():
        assert _cli(home, "enclave", "allow-list", "sign", str(doc))[0] == 0
    document = json.loads(doc.read_text())
    document["body"]["entries"][0]["measurement"] = "ee" * 48
    doc.write_text(json.dumps(document))

    code, out = _cli(homes["bank"], "enclave", "allow-list", "show", str(doc), "--json")
    assert len(json.loads(out)["bad_signatures"]) == 2
    code, out = _cli(homes["bank"], "enclave", "allow-list", "submit", str(doc),
                     "--server", key_service)  # fmt: skip
    assert code != 0 and "does not verify" in out


def test_propose_refuses_a_malformed_entry(homes: dict[str, Path], tmp_path: Path) -> None:
    code, out = _cli(homes["alice"], "enclave", "allow-list", "propose", "--version", "1",
                     "--entry", "tdx:not-hex:1", "--out", str(tmp_path / "x.json"))  # fmt: skip
    assert code != 0 and "not hex" in out
