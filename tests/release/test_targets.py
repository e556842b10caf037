"""The table of targets, read by the project file's validator and the help; TLS skipped only for loopback hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config.targets import TARGETS
from conveyor.errors import ConfigError
from conveyor.release.targets import Target, target_class, target_for
from conveyor.release.targets.hosts import is_loopback
from conveyor.release.targets.oci import OciTarget


@pytest.mark.parametrize(
    ("host", "insecure"),
    [
        ("localhost:5000", True),
        ("localhost", True),
        ("LOCALHOST:5000", True),
        ("127.0.0.1:5001", True),
        ("127.1.2.3", True),
        ("[::1]:5000", True),
        ("localhost.registry.example.com", False),
        ("localhost.registry.example.com:443", False),
        ("127.attacker.example", False),
        ("127.0.0.1.nip.io:5000", False),
        ("[::1].attacker.example", False),
        ("registry.example.com", False),
        ("10.0.0.5:5000", False),
    ],
)
def test_tls_is_skipped_only_for_loopback_and_exactly_localhost(host: str, insecure: bool) -> None:
    if host == "[::1].attacker.example":
        with pytest.raises(ConfigError):
            is_loopback(host)
        return
    assert is_loopback(host) is insecure
    assert OciTarget(f"oci://{host}/census").insecure is insecure


def test_every_table_entry_is_a_target_for_its_scheme() -> None:
    assert set(TARGETS) == {"oci", "local", "batch"}
    for scheme, kind in TARGETS.items():
        cls = target_class(kind)
        assert issubclass(cls, Target) and cls.scheme == scheme


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "must be oci://HOST[:PORT]/REPO, local://PORT or batch://ENV/INPUT"),
        ("oci://registry.example.com", "must be oci://HOST[:PORT]/REPO"),
        ("local://eighty", "must be local://PORT"),
    ],
)
def test_the_project_file_accepts_only_what_the_table_holds(tmp_path: Path, url: str, message: str) -> None:
    from conveyor.config import load_project

    (tmp_path / "conveyor.toml").write_text(
        f'[project]\nname = "x"\n\n[environments.dev]\nsecrets = "env://"\nlake = "file:///tmp"\n\n'
        f'[release.qa]\ntarget = "{url}"\n'
    )
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_project(tmp_path)
    with pytest.raises(ConfigError, match="release target"):
        target_for(url)
