"""Where the acting key comes from (--key, $CONVEYOR_SIGNING_KEY, git's user.signingkey, ssh-agent), and who
it makes the actor: a principal of allowed_signers, never a typed name."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import ConveyorError
from conveyor.secrets.redaction import forget_all, redact
from conveyor.trust import (
    AllowedSigners,
    NotAllowedSigner,
    SigningKeyError,
    identify,
    load_signing_key,
    sign,
    verify,
)

MESSAGE = b"build 1a2b3c tested\n"


@pytest.fixture(autouse=True)
def _no_key_from_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the developer's key variable, git configuration nor agent leaks into these tests."""
    monkeypatch.delenv("CONVEYOR_SIGNING_KEY", raising=False)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real ssh-agent on a socket of its own; SSH_AUTH_SOCK points at it."""
    socket = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if socket.exists():
            break
        subprocess.run(["sleep", "0.05"], check=True)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(socket))
    yield socket
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)


def _askpass(tmp_path: Path, passphrase: str, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "askpass"
    script.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
    script.chmod(0o700)
    monkeypatch.setenv("SSH_ASKPASS", str(script))
    monkeypatch.setenv("SSH_ASKPASS_REQUIRE", "force")


def _encrypted_key(tmp_path: Path, name: str = "locked") -> Path:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret-pass", "-C", name, "-f", str(path)], check=True)
    return path


def test_key_option_signs_in_process(keys):
    key = load_signing_key(keys.key("alice"))
    assert key.private is not None and key.source == "--key"
    assert key.public.openssh() == " ".join(keys.public("alice").split()[:2])
    assert identify(AllowedSigners.load(keys.allowed_signers), key).principal == "alice"


def test_environment_variable_with_a_path(keys, monkeypatch):
    monkeypatch.setenv("CONVEYOR_SIGNING_KEY", str(keys.key("bob")))
    assert identify(AllowedSigners.load(keys.allowed_signers), load_signing_key(None)).principal == "bob"


def test_environment_variable_with_the_key_text_is_masked(keys, monkeypatch):
    text = keys.key("ci").read_text()
    monkeypatch.setenv("CONVEYOR_SIGNING_KEY", text)
    forget_all()
    try:
        key = load_signing_key(None)
        assert key.path is None and key.source == "$CONVEYOR_SIGNING_KEY"
        assert "PRIVATE" not in repr(key) and text.splitlines()[1] not in repr(key)
        for line in text.splitlines()[1:-1]:
            assert redact(f"leaked: {line}") == "leaked: ***"
        assert "BEGIN OPENSSH PRIVATE KEY" not in redact(text)
        assert verify(MESSAGE, sign(MESSAGE, key), AllowedSigners.load(keys.allowed_signers)) == "ci"
    finally:
        forget_all()


def test_key_option_wins_over_the_environment(keys, monkeypatch):
    monkeypatch.setenv("CONVEYOR_SIGNING_KEY", str(keys.key("bob")))
    allowed = AllowedSigners.load(keys.allowed_signers)
    assert identify(allowed, load_signing_key(keys.key("carol"))).principal == "carol"


def test_git_user_signingkey_path_and_literal_with_agent(keys, tmp_path, agent):
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    git = ["git", "-C", str(repo), "config"]
    subprocess.run([*git, "user.signingkey", str(keys.key("carol"))], check=True)
    allowed = AllowedSigners.load(keys.allowed_signers)
    # gpg.format is openpgp by default: then user.signingkey is a GPG key id, not ours to read
    with pytest.raises(SigningKeyError):
        load_signing_key(None, cwd=repo)
    subprocess.run([*git, "gpg.format", "ssh"], check=True)
    assert identify(allowed, load_signing_key(None, cwd=repo)).principal == "carol"
    # key::LITERAL: the private half must be in ssh-agent, as git requires
    subprocess.run([*git, "user.signingkey", f"key::{keys.public('alice')}"], check=True)
    key = load_signing_key(None, cwd=repo)
    assert key.private is None and key.path is None and key.source == "git's user.signingkey"
    with pytest.raises(SigningKeyError, match="ssh-keygen could not sign") as caught:
        sign(MESSAGE, key)
    assert "ssh-add" in (caught.value.hint or "")
    subprocess.run(["ssh-add", "-q", str(keys.key("alice"))], check=True, capture_output=True)
    assert verify(MESSAGE, sign(MESSAGE, key), allowed) == "alice"


def test_public_key_file_with_the_private_half_in_the_agent(tmp_path, agent, monkeypatch):
    locked = _encrypted_key(tmp_path)
    _askpass(tmp_path, "s3cret-pass", monkeypatch)
    subprocess.run(["ssh-add", "-q", str(locked)], check=True, capture_output=True, stdin=subprocess.DEVNULL)
    monkeypatch.delenv("SSH_ASKPASS")  # the agent signs: no passphrase is asked for again
    allowed = AllowedSigners.parse(f"dave {(tmp_path / 'locked.pub').read_text()}")
    public_only = load_signing_key(tmp_path / "locked.pub")
    assert public_only.private is None
    assert verify(MESSAGE, sign(MESSAGE, public_only), allowed) == "dave"
    encrypted = load_signing_key(locked)  # the encrypted file: its public half is read without the passphrase
    assert encrypted.public == public_only.public and encrypted.private is None
    assert verify(MESSAGE, sign(MESSAGE, encrypted), allowed) == "dave"


def test_encrypted_key_without_agent_asks_for_its_passphrase(tmp_path, monkeypatch):
    locked = _encrypted_key(tmp_path)
    allowed = AllowedSigners.parse(f"dave {(tmp_path / 'locked.pub').read_text()}")
    _askpass(tmp_path, "s3cret-pass", monkeypatch)
    monkeypatch.setenv("CONVEYOR_SIGNING_KEY", locked.read_text())  # as a CI secret, encrypted
    key = load_signing_key(None)
    assert key.private is None and key.text is not None
    assert verify(MESSAGE, sign(MESSAGE, key), allowed) == "dave"
    _askpass(tmp_path, "wrong", monkeypatch)
    with pytest.raises(SigningKeyError, match="ssh-keygen could not sign"):
        sign(MESSAGE, load_signing_key(locked))


def test_no_key_is_exit_2_naming_the_commands_that_fix_it(tmp_path):
    with pytest.raises(SigningKeyError) as caught:
        load_signing_key(None, cwd=tmp_path)
    assert caught.value.exit_code == 2
    hint = caught.value.hint or ""
    assert "ssh-keygen -t ed25519 -f ~/.ssh/conveyor" in hint and "--key" in hint and "CONVEYOR_SIGNING_KEY" in hint


def test_key_not_in_allowed_signers_is_exit_1_with_the_line_to_add(keys):
    outsider = load_signing_key(keys.key("outsider"))
    with pytest.raises(NotAllowedSigner) as caught:
        identify(AllowedSigners.load(keys.allowed_signers), outsider)
    assert caught.value.exit_code == 1
    assert f"NAME {outsider.public.openssh()}" in (caught.value.hint or "")


def test_unreadable_or_unprotected_key_files(keys, tmp_path):
    with pytest.raises(SigningKeyError, match="there is no key file"):
        load_signing_key(tmp_path / "nope")
    exposed = tmp_path / "exposed"
    exposed.write_text(keys.key("alice").read_text())
    exposed.chmod(0o644)
    with pytest.raises(SigningKeyError, match="can be read by others") as caught:
        load_signing_key(exposed)
    assert f"chmod 600 {exposed}" in (caught.value.hint or "")
    junk = tmp_path / "junk"
    junk.write_text("hello\n")
    junk.chmod(0o600)
    with pytest.raises(ConveyorError, match="neither a private key"):
        load_signing_key(junk)


def test_pem_rsa_key_signs(tmp_path):
    path = tmp_path / "pem"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", str(path)], check=True)
    assert path.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    key = load_signing_key(path)
    assert key.private is not None
    allowed = AllowedSigners.parse(f"erin {(tmp_path / 'pem.pub').read_text()}")
    assert verify(MESSAGE, sign(MESSAGE, key), allowed) == "erin"
    assert os.stat(path).st_mode & 0o077 == 0


def test_made_keys_are_openssh_keys(tmp_path):
    from conveyor.trust import make_key

    made = make_key(tmp_path / "people" / "dave", "dave")
    assert (tmp_path / "people" / "dave").stat().st_mode & 0o777 == 0o600
    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(tmp_path / "people" / "dave")], capture_output=True, text=True, check=True
    ).stdout.split()[:2]
    assert " ".join(derived) == made.public.openssh()
    allowed = AllowedSigners.parse(f"dave {(tmp_path / 'people' / 'dave.pub').read_text()}")
    assert verify(MESSAGE, sign(MESSAGE, load_signing_key(tmp_path / "people" / "dave")), allowed) == "dave"
    with pytest.raises(SigningKeyError, match="already exists"):
        make_key(tmp_path / "people" / "dave", "dave")
