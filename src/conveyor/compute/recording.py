"""Recording a finished training script to the environment's MLflow registry: its params, metrics and tags
(masked as they are stored), and, when it succeeded, its models registered with the lineage tags of its run."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.secrets.boundaries import mask_fields

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conveyor.compute.child import FinishedScript
    from conveyor.config import Environment
    from conveyor.registry.store import ModelRegistry


_registries: dict[str, ModelRegistry] = {}
_registries_lock = threading.Lock()


def _registry(environment: Environment) -> ModelRegistry:
    """The environment's registry, one per registry URI in this process (so one prepared while the script ran
    is the one that registers)."""
    from conveyor.registry.store import ModelRegistry

    with _registries_lock:
        uri = environment.registry_uri
        if uri not in _registries:
            _registries[uri] = ModelRegistry(environment)
        return _registries[uri]


def warm_registry(environment: Environment) -> None:
    """Import MLflow's model logging and open the registry's store while the script runs (on the other core):
    registration needs both afterwards."""
    with contextlib.suppress(Exception):
        _registry(environment).prepare()


def log_run(environment: Environment, run: FinishedScript, *, ok: bool) -> tuple[str, list[dict[str, Any]]]:
    """The MLflow run of this training in the environment's registry, with everything masked as it is stored;
    registers the models when ok. Its id and the versions registered."""
    registry = _registry(environment)
    with _registry_uris(registry.uri):
        return _record(environment, registry, run, ok=ok)


@contextlib.contextmanager
def _registry_uris(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to `uri` for a registration, and put back after."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    saved = tracking_state._tracking_uri, registry_state._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking_state._tracking_uri, registry_state._registry_uri = saved


def _record(
    environment: Environment, registry: ModelRegistry, run: FinishedScript, *, ok: bool
) -> tuple[str, list[dict[str, Any]]]:
    """Create the run (its start time the script's), log what the script logged, masked; register when ok."""
    import mlflow
    from mlflow.entities import Metric, Param

    from conveyor.registry.store import pinned_requirements

    client, record, lineage = registry.client, run.record, run.lineage
    script = Path(run.settings.script).name
    run_tags = {"conveyor.environment": environment.name, "conveyor.script": script, **record.tags}
    created = client.create_run(
        registry.experiment_id(),
        start_time=run.started,
        tags=mask_fields(run_tags),
        run_name=f"train-{environment.name}",
    )
    run_id = created.info.run_id
    params = [Param(k, str(v)) for k, v in mask_fields(record.params).items()]
    names = list(dict.fromkeys(key for key, _, _, _ in record.metrics))
    renamed = dict(zip(names, mask_fields(dict.fromkeys(names, 0.0)), strict=True))
    metrics = [Metric(renamed[key], float(value), stamp, step) for key, value, stamp, step in record.metrics]
    client.log_batch(run_id, metrics=metrics, params=params)
    if not ok:
        client.set_terminated(run_id, "FAILED")
        return run_id, []
    registered = []
    project = environment.project
    root = project.root
    code = [root / c for c in project.config.project.code if (root / c).exists()]
    latest = {k: v for k, v in mask_fields(record.latest_metrics()).items() if isinstance(v, float)}
    with mlflow.start_run(run_id=run_id):
        for pending in record.registrations:
            score = root / project.config.project.score
            model_uri = registry.log_pyfunc(pending.path, score, code, pinned_requirements())
            tags = {**pending.tags, **lineage, **{f"metric.{k}": f"{v:.6g}" for k, v in latest.items()}}
            version = registry.register(model_uri, pending.name, {k: str(v) for k, v in mask_fields(tags).items()})
            registered.append(version.to_dict())
    return run_id, json.loads(json.dumps(registered))
