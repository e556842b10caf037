"""The classes the entries name."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from conveyor.errors import SecretMissing
from conveyor.release.targets import DeployContext, StepResult, Target
from conveyor.secrets.base import KeyedStore


class FolderTarget(Target):
    """A release is one JSON file naming what it ships."""

    scheme = "folder"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.folder = Path(url.removeprefix("folder://"))

    def steps(self) -> list[str]:
        return ["write"]

    def run_step(self, name: str, context: DeployContext) -> StepResult:
        written = self.folder / f"{context.stage}.json"
        record = {"release": context.release_id, "package": context.shipment.package_digest}
        written.write_text(json.dumps(record))
        return StepResult(reference=str(written), digest=context.shipment.package_digest)


class InlineCompute:
    def __init__(self, setting: str) -> None:
        self.setting = setting

    def train(self, environment: Any, args: Sequence[str], out: Any, err: Any) -> Any:
        raise NotImplementedError

    def spark_session(self, app_name: str, hadoop_settings: Mapping[str, str]) -> Any:
        raise NotImplementedError


VALUES: dict[str, dict[str, str]] = {}


class MemoryStore(KeyedStore):
    def __init__(self, url: str) -> None:
        self.url = url
        self.values = VALUES.setdefault(url, {})

    @classmethod
    def from_url(cls, url: str, project_root: Path) -> MemoryStore:
        return cls(url)

    def get(self, key: str) -> str:
        if key not in self.values:
            raise SecretMissing(f"secret {key!r} is missing from store {self.url}", key=key)
        return self.admit(key, self.values[key])

    def names(self) -> list[str]:
        return sorted(self.values)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value
