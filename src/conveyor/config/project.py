"""Finding and loading `conveyor.toml`; choosing an environment."""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from conveyor.config.environment import Environment
from conveyor.config.gates import GateSettings
from conveyor.config.schema import ProjectFile
from conveyor.errors import ConfigError
from conveyor.secrets.redaction import redact

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

PROJECT_FILE = "conveyor.toml"
ENV_VARIABLE = "CONVEYOR_ENV"


def chosen_environment(name: str | None = None) -> str | None:
    """The environment asked for: `name`, else `$CONVEYOR_ENV` (None when neither names one). The one reading of
    that variable: `Project.environment` and the CLI's `--env` both go through it."""
    return name or os.environ.get(ENV_VARIABLE) or None


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder, from `start` up, that holds `conveyor.toml`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise ConfigError(
        f"no {PROJECT_FILE} in {here} or any folder above it",
        hint="Run conveyor inside a project, pass --project DIR, or create one with `conveyor init DIR`.",
    )


def _describe(error: ErrorDetails) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "missing":
        return f"  {key}: missing (required)"
    if kind == "extra_forbidden":
        return f"  {key}: unknown key (misspelled? see `conveyor init --help` for a complete example)"
    value = redact(repr(error.get("input")))
    message = error["msg"].removeprefix("Value error, ")
    return f"  {key} = {value}: {message}"


def parse_project_file(path: Path) -> ProjectFile:
    """Read and validate one `conveyor.toml`; every problem is named with its key and bad value."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist", hint="Create a project with `conveyor init DIR`.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text: byte {exc.start} is {exc.object[exc.start : exc.start + 1]!r}",
            hint="TOML files are UTF-8: save it as UTF-8 (e.g. iconv -f latin1 -t utf-8).",
        ) from None
    try:
        return ProjectFile.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError(f"{path} is not a valid project file:\n" + "\n".join(lines)) from None


@dataclass
class Project:
    """A loaded project: its root folder and validated project file."""

    root: Path
    config: ProjectFile
    _environments: dict[str, Environment] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.config.project.name

    @property
    def file(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def allowed_signers_file(self) -> Path:
        """`[trust] allowed_signers`, relative to the project folder: the keys that may sign, and whose they are."""
        return self.root / self.config.trust.allowed_signers

    @property
    def state_dir(self) -> Path:
        """`.conveyor/` inside the project: local stores, builds and the ledger (never committed)."""
        return self.root / ".conveyor"

    def required_secrets(self, env: str) -> list[str]:
        """Secret keys `env` needs: its configuration's references (the gate store's are `gates.required_secrets`)."""
        return self.environment(env).required_secrets()

    @cached_property
    def gates(self) -> GateSettings:
        """`[gates]`: the gate step's own store and the sealed set's location."""
        return GateSettings(self.config.gates, self.root, self.file)

    def environment(self, name: str | None = None) -> Environment:
        """The named environment (default: `$CONVEYOR_ENV`); unknown names are refused with the known ones."""
        name = chosen_environment(name)
        if not name:
            raise ConfigError(
                "no environment chosen",
                hint=f"Pass --env with one of: {', '.join(self.config.environments)} (or set {ENV_VARIABLE}).",
            )
        if name not in self.config.environments:
            close = difflib.get_close_matches(name, list(self.config.environments), n=1, cutoff=0.5)
            suggestion = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"environment {name!r} is not declared in {self.file}.{suggestion}",
                hint=f"Declared environments: {', '.join(self.config.environments)}.",
            )
        if name not in self._environments:
            self._environments[name] = Environment(name, self.config.environments[name], self)
        return self._environments[name]


def load_project(start: Path | str | None = None) -> Project:
    """Load the project whose folder holds (or is above) `start`, default the current folder."""
    root = find_project_root(Path(start) if start else None)
    return Project(root=root, config=parse_project_file(root / PROJECT_FILE))
