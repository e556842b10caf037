"""The image's install layer is keyed by what it installs: a changed conveyor wheel is never served from cache."""

from __future__ import annotations

from pathlib import Path

from conveyor.package.image import prepare_context


def _context(tmp_path: Path, name: str, conveyor_bytes: bytes) -> str:
    package = tmp_path / "package"
    package.mkdir(exist_ok=True)
    (package / "requirements.lock").write_text("numpy==2.0 --hash=sha256:00\n")
    (package / "score.py").write_text("def run(raw):\n    return raw\n")
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    (wheels / "numpy-2.0-py3-none-any.whl").write_bytes(b"numpy")
    built = tmp_path / f"built-{name}"
    built.mkdir()
    conveyor = built / "conveyor-0.1.0-py3-none-any.whl"
    conveyor.write_bytes(conveyor_bytes)
    pip = tmp_path / "pip-24.0-py3-none-any.whl"
    pip.write_bytes(b"pip")
    containerfile = prepare_context(tmp_path / f"context-{name}", package, wheels, conveyor, "debian:bookworm", pip)
    text = containerfile.read_text()
    label = next(line for line in text.splitlines() if line.startswith("LABEL io.conveyor.runtime="))
    assert text.index(label) < text.index("\nRUN ")  # before the install, so that it keys the install's cache
    return label


def test_a_changed_conveyor_wheel_changes_the_install_layers_key(tmp_path: Path) -> None:
    first = _context(tmp_path, "a", b"conveyor code, version one")
    same = _context(tmp_path, "b", b"conveyor code, version one")
    changed = _context(tmp_path, "c", b"conveyor code, version two")
    assert first == same
    assert changed != first
