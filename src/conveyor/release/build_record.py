"""Build records (`build.json`): finding one by path or package digest, and reading what a release needs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import CheckFailed, ConveyorError, NotFoundError

if TYPE_CHECKING:
    from conveyor.config import Project

BUILDS_DIR = "builds"
HEX = re.compile(r"^(sha256:)?[0-9a-f]{4,64}$")


@dataclass(frozen=True)
class BuildRecord:
    """One build.json as a release sees it."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> BuildRecord:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFoundError(
                f"build record {path} does not exist", hint="List builds in .conveyor/builds/."
            ) from None
        except json.JSONDecodeError as exc:
            raise CheckFailed(f"build record {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("package"), dict) or "digest" not in data["package"]:
            raise CheckFailed(f"build record {path} has no package digest", hint="Rebuild with `conveyor build`.")
        return cls(path.resolve(), data)

    @property
    def digest(self) -> str:
        return str(self.data["package"]["digest"])

    @property
    def short(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]

    @property
    def project(self) -> str:
        return str(self.data.get("project", ""))

    @property
    def env(self) -> str | None:
        return self.data.get("env")

    @property
    def model(self) -> dict[str, Any]:
        return self.data.get("model") or {}

    @property
    def image(self) -> dict[str, Any] | None:
        return self.data.get("image") or None

    @property
    def package_dir(self) -> Path | None:
        folder = self.data["package"].get("dir")
        return Path(folder) if folder else None

    @property
    def tests_ok(self) -> bool:
        return bool((self.data.get("tests") or {}).get("ok"))

    @property
    def gates_ok(self) -> bool:
        return bool((self.data.get("gates") or {}).get("ok"))

    def require_passed(self) -> None:
        """Refuse a build whose tests or gates did not run and pass."""
        tests, gates = self.data.get("tests"), self.data.get("gates")
        if not tests:
            raise CheckFailed(f"build {self.short} has not been tested", hint=f"Run: conveyor test {self.path}")
        if not tests.get("ok"):
            raise CheckFailed(
                f"build {self.short} failed its tests ({tests.get('failed', '?')} failed, "
                f"{tests.get('errors', '?')} errors)",
                hint="Only a build whose tests passed can be released; fix and rebuild.",
            )
        if not gates:
            raise CheckFailed(
                f"build {self.short} has not been through the gates", hint=f"Run: conveyor gate {self.path}"
            )
        if not gates.get("ok"):
            failed = [r.get("metric", "?") for r in gates.get("results", []) if not r.get("passed")]
            raise CheckFailed(
                f"build {self.short} failed its gates ({', '.join(failed) or 'see build.json'})",
                hint="Only a build that passed its quality gates can be released.",
            )


def find_build(project: Project, reference: str | Path) -> BuildRecord:
    """A build by build.json path (or its folder), or by package digest or a unique prefix of it."""
    path = Path(reference)
    if path.is_dir() and (path / "build.json").is_file():
        path = path / "build.json"
    if path.is_file():
        return BuildRecord.load(path)
    text = str(reference).strip().lower()
    if not HEX.match(text):
        raise NotFoundError(
            f"build {reference!r} is neither a build.json file nor a package digest",
            hint="Pass the path of a build.json, or its package digest (a unique prefix is enough).",
        )
    prefix = text.removeprefix("sha256:")
    folder = project.state_dir / BUILDS_DIR
    matches = sorted(p for p in folder.glob(f"{prefix}*/build.json")) if folder.is_dir() else []
    if not matches:
        raise NotFoundError(
            f"no build with digest {reference} in {folder}",
            hint="Build one with `conveyor build`, or pass the path of its build.json.",
        )
    if len(matches) > 1:
        names = ", ".join(m.parent.name[:16] for m in matches[:5])
        raise ConveyorError(
            f"digest prefix {reference} matches {len(matches)} builds: {names}", hint="Give more digits."
        )
    return BuildRecord.load(matches[0])
