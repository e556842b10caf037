"""allowed_signers read as ssh-keygen reads it: patterns, options, validity times, refusals with line numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from openssh_tools import ssh_keygen_sign, ssh_keygen_verify

from conveyor.trust import (
    AllowedSigners,
    AllowedSignersError,
    UnknownSigner,
    WrongNamespace,
    load_signing_key,
    sign,
    verify,
)

MESSAGE = b"approve release 3\n"


def test_principal_lists_patterns_quotes_and_comments(keys):
    text = f"""
# who may sign for this project
alice,alice@example.com {keys.public("alice")}
"bob" {keys.public("bob")}
*@example.com,!mallory@example.com {keys.public("carol")}
"""
    allowed = AllowedSigners.parse(text)
    assert allowed.principals == {"alice", "alice@example.com", "bob"}
    assert allowed.principal_of(keys.public("alice")) == "alice"
    assert allowed.principal_of(load_signing_key(keys.key("bob")).public) == "bob"
    assert allowed.principal_of(keys.public("carol")) is None  # only patterns: they name no one
    assert allowed.principal_of(keys.public("outsider")) is None
    assert len(allowed.keys_of("dave@example.com")) == 1 and allowed.keys_of("mallory@example.com") == []
    with pytest.raises(UnknownSigner, match="only under patterns"):
        verify(MESSAGE, sign(MESSAGE, load_signing_key(keys.key("carol"))), allowed)


def test_namespaces_option_is_honoured_like_openssh(keys, tmp_path):
    path = tmp_path / "allowed_signers"
    path.write_text(f'alice namespaces="git,file" {keys.public("alice")}\n')
    allowed = AllowedSigners.load(path)
    signature = sign(MESSAGE, load_signing_key(keys.key("alice")))
    with pytest.raises(WrongNamespace, match="only for file, git"):
        verify(MESSAGE, signature, allowed)
    assert ssh_keygen_verify(path, "alice", signature, MESSAGE).returncode != 0
    path.write_text(f'alice namespaces="git,conv*" {keys.public("alice")}\n')
    assert verify(MESSAGE, signature, AllowedSigners.load(path)) == "alice"
    assert ssh_keygen_verify(path, "alice", signature, MESSAGE).returncode == 0


def test_validity_times_are_honoured_like_openssh(keys, tmp_path):
    path = tmp_path / "allowed_signers"
    signature = ssh_keygen_sign(keys.key("bob"), MESSAGE)
    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y%m%d")
    tomorrow = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y%m%d")
    for options, ok in (
        (f'valid-before="{yesterday}Z"', False),
        (f'valid-after="{tomorrow}"', False),
        (f'valid-after="{yesterday}0000Z",valid-before="{tomorrow}235959"', True),
    ):
        path.write_text(f"bob {options} {keys.public('bob')}\n")
        openssh = ssh_keygen_verify(path, "bob", signature, MESSAGE).returncode == 0
        assert openssh == ok, options
        if ok:
            assert verify(MESSAGE, signature, AllowedSigners.load(path)) == "bob"
        else:
            with pytest.raises(UnknownSigner, match="not valid at"):
                verify(MESSAGE, signature, AllowedSigners.load(path))
    # a signature is checked at a given moment when asked (e.g. the time an event was recorded)
    path.write_text(f'bob valid-before="{yesterday}Z" {keys.public("bob")}\n')
    earlier = datetime.now(UTC) - timedelta(days=3)
    assert verify(MESSAGE, signature, AllowedSigners.load(path), at=earlier) == "bob"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("alice cert-authority {key}", "cert-authority keys are not accepted"),
        ("alice", "needs principals and a public key"),
        ("alice ssh-ed25519 not-base64!", "base64"),
        ("alice namespaces=git {key}", "double quotes"),
        ('alice nosuchoption="x" {key}', "unknown option 'nosuchoption'"),
        ('alice valid-after="2026-01-01" {key}', "is not a time"),
        ('"alice {key}', "quote is not closed"),
        ("alice ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQABAAABAQ==", "holds a"),
    ],
)
def test_bad_lines_name_the_file_and_line(keys, tmp_path, line, expected):
    path = tmp_path / "allowed_signers"
    path.write_text("# first line is a comment\n" + line.format(key=keys.public("alice")) + "\n")
    with pytest.raises(AllowedSignersError, match=expected) as caught:
        AllowedSigners.load(path)
    assert f"{path} line 2" in caught.value.message
    assert caught.value.exit_code == 2


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(AllowedSignersError, match="does not exist") as caught:
        AllowedSigners.load(tmp_path / "allowed_signers")
    assert "NAME ssh-ed25519" in (caught.value.hint or "")


def test_init_writes_an_allowed_signers_file_that_explains_itself(tmp_path):
    from conveyor.config import load_project
    from conveyor.examples.scaffold import init_project

    made = init_project(tmp_path / "p", secrets_dir=tmp_path / "s", lakes_dir=tmp_path / "l", rows=50, git=False)
    project = load_project(made.root)
    assert project.config.trust.builders == ["ci"]
    text = project.allowed_signers_file.read_text()
    assert "ssh-keygen -t ed25519 -f ~/.ssh/conveyor" in text and "CONVEYOR_SIGNING_KEY" in text
    assert AllowedSigners.load(project.allowed_signers_file).entries == ()  # comments only, until a team adds keys
