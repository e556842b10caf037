"""The sealed evaluation set: read with the gate store's credentials into a private copy, never from a lake that
training opens."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import ConfigError, ConveyorError, LakeError
from conveyor.lake import open_lake, parse_lake_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.config import Project


def split_url(url: str) -> tuple[str, str]:
    """`s3://bucket/sealed/eval.csv` → (`s3://bucket/sealed`, `eval.csv`)."""
    head, _, name = url.rstrip("/").rpartition("/")
    if not name or head.endswith(":/") or head.endswith(":"):
        raise ConfigError(
            "the sealed set's URL ([gates] eval_data) names no file",
            hint="Put the file's full URL in the gate store, e.g. s3://BUCKET/sealed/eval.csv or file:///PATH/eval.csv.",
        )
    return head, name


def check_outside_lakes(project: Project, url: str) -> list[str]:
    """Refuse a sealed set inside any environment's lake (training there could read it); returns the environments
    checked (those whose lake URL this step can resolve)."""
    sealed = parse_lake_url(url, project.root)
    if sealed.scheme == "file" and _within(os.path.realpath(sealed.root), os.path.realpath(project.root)):
        raise ConfigError(
            "the sealed evaluation set lies inside the project folder, which every training script sees",
            hint="Move it out of the project (and out of every lake), and point eval-data-url there.",
        )
    checked = []
    for name in project.config.environments:
        try:
            lake = parse_lake_url(project.environment(name).lake_url, project.root)
        except ConveyorError:
            continue  # this step holds no credentials for that environment
        checked.append(name)
        if sealed.scheme == "file" and lake.scheme == "file":
            inside = _within(os.path.realpath(sealed.root), os.path.realpath(lake.root))
        else:
            inside = sealed.kind == lake.kind and _within(sealed.url_prefix, lake.url_prefix, sep="/")
        if inside:
            raise ConfigError(
                f"the sealed evaluation set lies inside the {name} lake, where a training script can read it",
                hint="Move it to a location only the gate store's credentials reach, and point eval-data-url there.",
            )
    return checked


def _within(path: str, root: str, sep: str = os.sep) -> bool:
    root = root.rstrip(sep)
    return path == root or path.startswith(root + sep)


@contextmanager
def sealed_copy(project: Project) -> Iterator[Path]:
    """A private copy of the sealed set (in a folder only this user can enter), removed afterwards."""
    url = project.gates.eval_data_url()
    try:
        check_outside_lakes(project, url)
        folder_url, name = split_url(url)
        source = open_lake(folder_url, project.gates.secrets, project.root)
    except LakeError as exc:
        raise ConfigError(
            f"gates.eval_data = {project.gates.config.eval_data!r} in {project.file} does not give a usable URL of "
            f"the sealed set: {exc.message}",
            hint="Fix the value in the gate store (CONVEYOR_SECRETS_GATES in CI), e.g. file:///data/sealed/eval.csv "
            "or abfss://container@account.dfs.core.windows.net/sealed/eval.csv.",
        ) from None
    suffix = Path(name).suffix or ".csv"
    with tempfile.TemporaryDirectory(prefix="conveyor-sealed-") as tmp:
        os.chmod(tmp, 0o700)
        target = Path(tmp) / f"data{suffix}"
        try:
            source.fs.get_file(name, str(target))
        except FileNotFoundError:
            raise ConveyorError(
                "the sealed evaluation set named by the gate store's eval-data-url does not exist",
                hint="Put the file there with the gate store's credentials, or fix eval-data-url in the gate store.",
            ) from None
        target.chmod(0o644)  # read by the evaluator's unprivileged user; the folder keeps everyone else out
        yield target
