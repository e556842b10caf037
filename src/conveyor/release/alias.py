"""The last step of every deployment: the stage's alias (e.g. `prod`) in the registry of the stage's environment.

That is the registry the quality gates read the champion from (`[release.prod] env`). When the build's model was
registered in another environment's registry, the model version is first copied into the stage's registry (once:
a version tagged with the package digest is reused), so the alias names a version that registry holds.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.release.targets import StepResult

if TYPE_CHECKING:
    from conveyor.config import Project
    from conveyor.registry import ModelRegistry
    from conveyor.release.shipment import Shipment

PACKAGE_TAG = "conveyor.package"
LIVE_TAG = "conveyor.live"
SOURCE_TAG = "conveyor.source"


def set_stage_alias(
    project: Project, stage: str, stage_env: str | None, model_env: str | None, shipment: Shipment
) -> StepResult:
    """Point alias `stage` at the shipped model version in `stage_env`'s registry; say what was done."""
    if not shipment.model_name or shipment.model_version is None:
        return StepResult(note="the build names no registered model")
    if stage_env is None:
        return StepResult(note=f"release.{stage} names no env, so no registry gets the {stage} alias")
    from conveyor.registry import ModelRegistry

    target = ModelRegistry(project.environment(stage_env))
    version = shipment.model_version
    if model_env is not None and model_env != stage_env:
        source = ModelRegistry(project.environment(model_env))
        if source.uri != target.uri:
            version = _copy_version(source, target, shipment)
    target.set_alias(shipment.model_name, stage, version)
    # The registry's own record that the stage is live: the gates fail a champion rule when it is set but the
    # alias is missing, instead of passing for want of a champion.
    target.client.set_registered_model_tag(shipment.model_name, f"{LIVE_TAG}.{stage}", version)
    return StepResult(reference=f"{stage_env}:{shipment.model_name}@{stage} = {version}", note=f"version {version}")


def _copy_version(source: ModelRegistry, target: ModelRegistry, shipment: Shipment) -> str:
    """The version of the shipped model in `target`'s registry, registered from `source`'s copy if not there."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    name, version = shipment.model_name, shipment.model_version
    assert name is not None and version is not None  # noqa: S101 -- narrows for mypy: the caller checked the shipment names a version
    client = target.client
    try:
        for found in client.search_model_versions(f"name = '{name}'"):
            if (found.tags or {}).get(PACKAGE_TAG) == shipment.package_digest:
                return str(found.version)
    except MlflowException:
        pass  # the model is not registered there yet
    info = source.resolve(f"{name}/{version}")
    origin = f"{source.environment.name}:{name}/{version}"
    tags = {**info.tags, PACKAGE_TAG: shipment.package_digest, SOURCE_TAG: origin}
    with tempfile.TemporaryDirectory(prefix="conveyor-alias-") as tmp:
        # The version's own storage location, asked of the source registry's client: a models:/ URI would be
        # resolved against MLflow's process-wide registry URI, which another registry may have set.
        location = source.client.get_model_version_download_uri(name, version)
        folder = Path(download_artifacts(artifact_uri=location, dst_path=str(Path(tmp) / "model")))
        run = client.create_run(target.experiment_id(), tags={SOURCE_TAG: origin, PACKAGE_TAG: shipment.package_digest})
        client.log_artifacts(run.info.run_id, str(folder), "model")
        client.set_terminated(run.info.run_id)
    with contextlib.suppress(MlflowException):  # it exists already
        client.create_registered_model(name)
    copied = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id, tags=tags)
    return str(copied.version)


def clear_stage_alias(project: Project, stage: str, stage_env: str | None, shipment: Shipment) -> str | None:
    """After `release stop`: alias `stage` and the registry's live tag leave `stage_env`'s registry, so
    `models:/NAME@STAGE` names nothing and the gates compare with no champion. Says what was done."""
    if not shipment.model_name or stage_env is None:
        return None
    from mlflow.exceptions import MlflowException

    from conveyor.registry import ModelRegistry

    client = ModelRegistry(project.environment(stage_env)).client
    with contextlib.suppress(MlflowException):  # already gone
        client.delete_registered_model_alias(shipment.model_name, stage)
    with contextlib.suppress(MlflowException):
        client.delete_registered_model_tag(shipment.model_name, f"{LIVE_TAG}.{stage}")
    return f"alias {stage} removed from {shipment.model_name} in {stage_env}'s registry"
