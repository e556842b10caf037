"""file://: a private TOML file, refused when others can read it, written atomically with mode 600."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from conveyor.errors import SecretError
from conveyor.secrets import open_store, redact
from conveyor.secrets.file import FileSecretStore, path_from_url


def private_file(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_url_paths_relative_absolute_and_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert path_from_url("file://secrets/dev.toml", tmp_path) == tmp_path / "secrets/dev.toml"
    assert path_from_url("file:///etc/conveyor/dev.toml", tmp_path) == Path("/etc/conveyor/dev.toml")
    assert (
        path_from_url("file://~/.conveyor/secrets/dev.toml", tmp_path) == tmp_path / "home/.conveyor/secrets/dev.toml"
    )


def test_get_registers_the_value_it_hands_out(tmp_path: Path) -> None:
    private_file(tmp_path / "dev.toml", 'sp-app-id = "5b1f3e0e-9a0c"\ndatalake-fqdn = "devlake.example"\n')
    store = open_store("file://dev.toml", tmp_path)

    assert store.names() == ["datalake-fqdn", "sp-app-id"]
    assert redact("lake devlake.example") == "lake devlake.example"  # listing hands out no value
    assert store.get("sp-app-id") == "5b1f3e0e-9a0c"
    assert redact("lake devlake.example id 5b1f3e0e-9a0c") == "lake devlake.example id ***"


def test_booleans_and_numbers_read_as_toml_writes_them(tmp_path: Path) -> None:
    private_file(tmp_path / "dev.toml", "enabled = true\nretries = 3\n")
    store = FileSecretStore(tmp_path / "dev.toml")
    store.public_keys = frozenset({"enabled", "retries"})  # published by design: too weak to mask otherwise
    assert store.get("enabled") == "true" and store.get("retries") == "3"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_file_open_to_others_is_refused_with_the_chmod_to_run(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "dev.toml"
    path.write_text('sp-app-id = "5b1f3e0e-9a0c"\n')
    path.chmod(mode)
    with pytest.raises(SecretError) as caught:
        FileSecretStore(path).get("sp-app-id")
    text = str(caught.value)
    assert f"chmod 600 {path}" in text and stat.filemode(stat.S_IFREG | mode) in text
    assert "5b1f3e0e" not in text


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="does not exist") as caught:
        open_store("file://nope.toml", tmp_path).get("sp-app-id")
    assert str(tmp_path / "nope.toml") in str(caught.value)
    assert "conveyor secrets set" in str(caught.value)


def test_missing_key_names_key_and_store(tmp_path: Path) -> None:
    private_file(tmp_path / "dev.toml", 'sp-app-id = "5b1f3e0e-9a0c"\n')
    with pytest.raises(SecretError) as caught:
        open_store("file://dev.toml", tmp_path).get("created-by")
    text = str(caught.value)
    assert "'created-by' is missing from store file://dev.toml" in text
    assert "5b1f3e0e" not in text


def test_bad_toml_is_reported_without_its_content(tmp_path: Path) -> None:
    private_file(tmp_path / "dev.toml", 'sp-app-id = "5b1f3e0e-9a0c\nother = 1\n')
    with pytest.raises(SecretError, match="is not valid TOML") as caught:
        FileSecretStore(tmp_path / "dev.toml").names()
    assert "5b1f3e0e" not in str(caught.value)


def test_tables_are_refused(tmp_path: Path) -> None:
    private_file(tmp_path / "dev.toml", '[dev]\nsp-app-id = "x"\n')
    with pytest.raises(SecretError, match=r"'dev' .* must be a string, not a dict"):
        FileSecretStore(tmp_path / "dev.toml").names()


def test_a_directory_is_reported(tmp_path: Path) -> None:
    (tmp_path / "dev.toml").mkdir(mode=0o700)
    with pytest.raises(SecretError, match="cannot read secret file"):
        FileSecretStore(tmp_path / "dev.toml").names()


def test_set_creates_a_private_file_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "home/.conveyor/secrets/dev.toml"
    store = FileSecretStore(path)

    store.set("sp-app-id", "5b1f3e0e-9a0c")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert tomllib.loads(path.read_text()) == {"sp-app-id": "5b1f3e0e-9a0c"}
    assert redact("5b1f3e0e-9a0c") == "***"
    assert os.listdir(path.parent) == ["dev.toml"]  # no temporary file left behind


def test_set_round_trips_awkward_values_and_keeps_others(tmp_path: Path) -> None:
    path = private_file(tmp_path / "dev.toml", 'datalake-fqdn = "devlake.example"\n')
    store = FileSecretStore(path)
    awkward = 'quote " back \\ tab \t cr \r nl \n nul \x00 bell \x07 del \x7f ünï ☃'

    store.set("odd.key with space", awkward)
    store.set("plain_key", "value-two")

    reopened = FileSecretStore(path)
    assert reopened.get("odd.key with space") == awkward
    assert reopened.names() == ["datalake-fqdn", "odd.key with space", "plain_key"]
    assert reopened.get("datalake-fqdn") == "devlake.example"


def test_set_replaces_the_file_whole_and_never_widens_its_mode(tmp_path: Path, monkeypatch) -> None:
    path = private_file(tmp_path / "dev.toml", 'a = "first-value"\n')
    # A stale temporary file open to everyone, as a crashed writer of an older version could leave.
    stale = tmp_path / "dev.toml.tmp"
    stale.write_text("")
    stale.chmod(0o666)
    before = path.stat().st_ino

    FileSecretStore(path).set("b", "second-value")

    assert path.stat().st_ino != before  # renamed into place, not rewritten in place
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stale.read_text() == ""  # the values never went through a file others can read

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        FileSecretStore(path).set("c", "third-value")
    assert tomllib.loads(path.read_text()) == {"a": "first-value", "b": "second-value"}
    assert sorted(os.listdir(tmp_path)) == ["dev.toml", "dev.toml.tmp"]


def test_set_refuses_a_file_open_to_others(tmp_path: Path) -> None:
    path = tmp_path / "dev.toml"
    path.write_text('a = "first-value"\n')
    path.chmod(0o644)
    with pytest.raises(SecretError, match="chmod 600"):
        FileSecretStore(path).set("b", "second-value")
    assert "second-value" not in path.read_text()
