"""``teeflow keys`` and the keyring under it (client/keyring.py), with TEEFLOW_HOME in tmp_path."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teeflow.cli.main import app
from teeflow.client.keyring import (
    Keyring,
    KeyringExistsError,
    KeyringNotFoundError,
    PassphraseError,
    default_home,
)

FAST_N = 1 << 10  # scrypt cost for tests; the default (2^17) takes about a second


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("TEEFLOW_HOME", str(path))
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# --- the keyring ---------------------------------------------------------------------------


def test_default_home_honours_teeflow_home(tmp_path: Path) -> None:
    assert default_home({"TEEFLOW_HOME": str(tmp_path)}) == tmp_path
    assert default_home({}) == Path.home() / ".teeflow"


def test_init_then_load_with_passphrase(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "kr", scrypt_n=FAST_N)

    public = keyring.init("correct horse")
    keys = keyring.load("correct horse")

    assert keys.verify_key == public.verify_key
    assert keys.public_key == public.public_key
    assert keys.fingerprint == public.fingerprint
    assert public.encrypted
    signature = keys.signing_key.sign("test", b"m")
    public.verify_key.verify("test", b"m", signature)


def test_files_are_private(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "kr", scrypt_n=FAST_N)

    keyring.init("pw")

    assert stat.S_IMODE(keyring.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(keyring.keys_path.stat().st_mode) == 0o600
    assert [p.name for p in keyring.root.iterdir()] == ["keys.json"]


def test_private_keys_are_not_stored_in_clear_with_a_passphrase(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "kr", scrypt_n=FAST_N)
    keyring.init("pw")

    keys = keyring.load("pw")
    stored = keyring.keys_path.read_text()

    for secret in (keys.signing_key.to_bytes(), keys.receiving_key.to_bytes()):
        assert secret.hex() not in stored
    assert "pw" not in repr(keys)


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "kr", scrypt_n=FAST_N)
    keyring.init("right")

    with pytest.raises(PassphraseError, match="wrong passphrase"):
        keyring.load("wrong")
    with pytest.raises(PassphraseError, match="need a passphrase"):
        keyring.load(None)


def test_unprotected_keys_load_without_passphrase(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "kr")
    public = keyring.init(None)

    keys = keyring.load(None)

    assert not public.encrypted
    assert keys.fingerprint == public.fingerprint
    with pytest.raises(PassphraseError, match="without a passphrase"):
        keyring.load("unexpected")


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "kr", scrypt_n=FAST_N)
    first = keyring.init("pw")

    with pytest.raises(KeyringExistsError):
        keyring.init("pw")
    second = keyring.init("pw", force=True)

    assert second.fingerprint != first.fingerprint
    assert stat.S_IMODE(keyring.keys_path.stat().st_mode) == 0o600


def test_edited_public_key_fails_like_a_wrong_passphrase(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path / "kr", scrypt_n=FAST_N)
    keyring.init("pw")
    document = json.loads(keyring.keys_path.read_text())
    other = Keyring(tmp_path / "other", scrypt_n=FAST_N).init("pw")
    document["signing_public_key"] = other.verify_key.b64()
    keyring.keys_path.write_text(json.dumps(document))

    with pytest.raises(PassphraseError):
        keyring.load("pw")


def test_missing_keyring_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(KeyringNotFoundError, match="teeflow keys init"):
        Keyring(tmp_path / "none").public()


def test_reserved_paths_live_in_the_root(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path)

    assert keyring.policy_path == tmp_path / "policy.json"
    assert keyring.credentials_path == tmp_path / "credentials.json"


# --- the commands --------------------------------------------------------------------------


def test_keys_init_with_passphrase_file_then_show(home: Path, tmp_path: Path) -> None:
    passphrase = tmp_path / "pass.txt"
    passphrase.write_text("s3cret phrase\n")

    code, out, err = run("keys", "init", "--passphrase-file", str(passphrase), "--json")
    created = json.loads(out)
    show_code, show_out, _ = run("keys", "show", "--json")
    shown = json.loads(show_out)

    assert (code, show_code) == (0, 0)
    assert err == ""
    assert shown == created
    assert shown["passphrase_protected"] is True
    assert Keyring(home).load("s3cret phrase").fingerprint == shown["fingerprint"]


def test_keys_init_with_passphrase_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PASS", "from env")

    code, out, _ = run("keys", "init", "--passphrase-env", "MY_PASS", "--json")

    assert code == 0
    assert Keyring(home).load("from env").fingerprint == json.loads(out)["fingerprint"]


def test_keys_init_without_passphrase_warns(home: Path) -> None:
    code, out, err = run("keys", "init")

    assert code == 0
    assert "not passphrase-protected" in err
    assert "fingerprint" in out


def test_keys_init_refuses_to_overwrite(home: Path) -> None:
    run("keys", "init")

    code, out, err = run("keys", "init")
    forced, _, _ = run("keys", "init", "--force")

    assert code == 1
    assert out == ""
    assert err.startswith("error: keys already exist") and err.count("\n") == 1
    assert forced == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--passphrase-env", "UNSET_VARIABLE_FOR_TEST"], "empty or unset"),
        (["--passphrase-env", "X", "--passphrase-file", "f"], "not both"),
        (["--passphrase-file", "/nonexistent/pass"], "cannot read"),
    ],
)
def test_keys_init_passphrase_errors(home: Path, args: list[str], message: str) -> None:
    code, _, err = run("keys", "init", *args)

    assert code == 1
    assert message in err
    assert not home.exists()


def test_keys_show_table_has_keys_and_fingerprint(home: Path) -> None:
    _, created, _ = run("keys", "init", "--json")
    expected = json.loads(created)

    code, out, _ = run("keys", "show")

    assert code == 0
    flat = "".join(out.split())  # the table may fold long values
    assert expected["fingerprint"] in flat
    assert expected["signing_public_key"] in flat
    assert expected["receiving_public_key"] in flat


def test_keys_show_without_keys_fails_with_one_line(home: Path) -> None:
    code, out, err = run("keys", "show")

    assert code == 1
    assert out == ""
    assert "teeflow keys init" in err and err.count("\n") == 1
