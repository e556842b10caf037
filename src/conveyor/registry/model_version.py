"""A registered model version as conveyor shows it, and the `NAME[/VERSION|@ALIAS]` references that name one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from conveyor.errors import ConveyorError

SPEC = re.compile(r"^(?:models:/)?(?P<name>[A-Za-z0-9_.\-]+)(?:/(?P<version>\d+|latest)|@(?P<alias>[A-Za-z0-9_\-]+))?$")
PROMPT_TAG = "mlflow.prompt.is_prompt"  # MLflow keeps prompts as registered models carrying this tag
LATEST_ALIAS = "latest"  # MLflow reads `NAME@latest` as the highest version


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version: where it came from, its tags and aliases; `metrics`/`params` of its run when
    asked for (`ModelRegistry.resolve`)."""

    name: str
    version: str
    run_id: str | None
    source: str
    created_at: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def with_run(self, metrics: dict[str, float], params: dict[str, str]) -> ModelVersionInfo:
        return replace(self, metrics=metrics, params=params)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "created_at": self.created_at,
            "aliases": list(self.aliases),
            "tags": dict(self.tags),
            "metrics": dict(self.metrics),
            "params": dict(self.params),
        }


def parse_model_spec(spec: str) -> tuple[str, str | None, str | None]:
    """`name`, `name/3`, `name@prod` or `models:/name/3` → (name, version, alias)."""
    match = SPEC.match(spec.strip())
    if not match:
        raise ConveyorError(
            f"model reference {spec!r} is not understood",
            hint="Write NAME, NAME/VERSION, NAME@ALIAS or models:/NAME/VERSION (e.g. worst_regression/3).",
        )
    version = match["version"]
    return match["name"], None if version == "latest" else version, match["alias"]


def newest_first(versions: list[ModelVersionInfo]) -> list[ModelVersionInfo]:
    return sorted(versions, key=lambda v: int(v.version), reverse=True)
