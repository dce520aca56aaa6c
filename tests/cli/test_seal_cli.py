"""``teeflow seal`` / ``teeflow unseal``: round trip, key-file rules, and no partial output."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import blake3
import pytest
from typer.testing import CliRunner

from teeflow.cli.files import read_data_key
from teeflow.cli.main import app
from teeflow.crypto import CHUNK_SIZE, CryptoError
from teeflow.crypto._header import HEADER_SIZE, TAG_SIZE


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TEEFLOW_HOME", str(tmp_path / "home"))
    return tmp_path


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def sealed_file(work: Path, size: int = 2 * CHUNK_SIZE + 5) -> tuple[bytes, Path, Path]:
    plaintext = os.urandom(size)
    (work / "plain").write_bytes(plaintext)
    code, _, err = run("seal", work / "plain", work / "sealed", "--key-out", work / "key.json")
    assert code == 0, err
    return plaintext, work / "sealed", work / "key.json"


def test_seal_then_unseal_round_trips(work: Path) -> None:
    plaintext = os.urandom(3 * CHUNK_SIZE + 7)
    (work / "plain").write_bytes(plaintext)

    code, out, err = run(
        "seal", work / "plain", work / "sealed", "--key-out", work / "key.json", "--json"
    )
    sealed = json.loads(out)
    code2, out2, _ = run("unseal", work / "sealed", work / "opened", "--key", work / "key.json")

    assert (code, code2, err) == (0, 0, "")
    assert (work / "opened").read_bytes() == plaintext
    ciphertext = (work / "sealed").read_bytes()
    assert sealed["ciphertext_digest"] == "blake3:" + blake3.blake3(ciphertext).hexdigest()
    assert sealed["ciphertext_size"] == len(ciphertext)
    assert sealed["plaintext_size"] == len(plaintext)
    assert "plaintext size" in out2


def test_key_file_is_private_and_readable_back(work: Path) -> None:
    _, _, key_file = sealed_file(work)

    key = read_data_key(key_file)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(key_file.read_text())["key_id"] == key.key_id.hex()


def test_unsealed_plaintext_is_private(work: Path) -> None:
    _, sealed, key_file = sealed_file(work)

    run("unseal", sealed, work / "opened", "--key", key_file)

    assert stat.S_IMODE((work / "opened").stat().st_mode) == 0o600


def test_seal_refuses_to_overwrite_a_key_file(work: Path) -> None:
    (work / "plain").write_bytes(b"data")
    (work / "key.json").write_text("precious")

    code, out, err = run("seal", work / "plain", work / "sealed", "--key-out", work / "key.json")

    assert code == 1 and out == ""
    assert "never overwritten" in err and err.count("\n") == 1
    assert (work / "key.json").read_text() == "precious"
    assert not (work / "sealed").exists()


def test_seal_refuses_to_overwrite_output_without_force(work: Path) -> None:
    (work / "plain").write_bytes(b"data")
    (work / "sealed").write_bytes(b"old")

    code, _, err = run("seal", work / "plain", work / "sealed", "--key-out", work / "k1")
    forced, _, _ = run("seal", work / "plain", work / "sealed", "--key-out", work / "k2", "--force")

    assert code == 1 and "--force" in err
    assert not (work / "k1").exists()  # no orphan key for a file never written
    assert forced == 0
    assert (work / "sealed").read_bytes() != b"old"


def test_seal_of_missing_input_fails_cleanly(work: Path) -> None:
    code, _, err = run("seal", work / "absent", work / "sealed", "--key-out", work / "k")

    assert code == 1 and "not a readable file" in err
    assert sorted(p.name for p in work.iterdir()) == []


@pytest.mark.parametrize(
    "damage",
    ["flip body byte", "flip header byte", "truncate at chunk boundary", "truncate", "append"],
)
def test_failed_unseal_leaves_no_output(work: Path, damage: str) -> None:
    _, sealed, key_file = sealed_file(work)
    blob = bytearray(sealed.read_bytes())
    boundary = HEADER_SIZE + CHUNK_SIZE + TAG_SIZE
    changed = {
        "flip body byte": lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:],
        "flip header byte": lambda b: b[:3] + bytes([b[3] ^ 1]) + b[4:],
        "truncate at chunk boundary": lambda b: b[:boundary],
        "truncate": lambda b: b[:-1],
        "append": lambda b: b + b"\x00",
    }[damage](bytes(blob))
    sealed.write_bytes(changed)
    before = sorted(p.name for p in work.iterdir())

    code, out, err = run("unseal", sealed, work / "opened", "--key", key_file)

    assert code == 1 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "no output was written" in err
    assert sorted(p.name for p in work.iterdir()) == before  # no OUT, no temp file


def test_failed_unseal_keeps_an_existing_output(work: Path) -> None:
    _, sealed, key_file = sealed_file(work)
    sealed.write_bytes(sealed.read_bytes()[:-1])
    (work / "opened").write_bytes(b"earlier result")

    code, _, _ = run("unseal", sealed, work / "opened", "--key", key_file, "--force")

    assert code == 1
    assert (work / "opened").read_bytes() == b"earlier result"


def test_unseal_with_the_wrong_key_fails(work: Path) -> None:
    _, sealed, _ = sealed_file(work)
    (work / "other").write_bytes(b"x")
    run("seal", work / "other", work / "other.sealed", "--key-out", work / "other.key")

    code, _, err = run("unseal", sealed, work / "opened", "--key", work / "other.key")

    assert code == 1 and "different key" in err
    assert not (work / "opened").exists()


@pytest.mark.parametrize(
    "content", ["not json", '{"type": "other"}', '{"type": "teeflow.data-key"}']
)
def test_unseal_rejects_a_bad_key_file(work: Path, content: str) -> None:
    _, sealed, _ = sealed_file(work, size=10)
    (work / "bad.key").write_text(content)

    code, _, err = run("unseal", sealed, work / "opened", "--key", work / "bad.key")

    assert code == 1 and "not a teeflow data-key file" in err
    with pytest.raises(CryptoError):
        read_data_key(work / "bad.key")
