"""Quality gates: the project's `evaluate(model, data)` on the sealed evaluation set, run against the packaged
model and the production champion inside the build's image, checked against the `[gates]` rules.

The rules are part of the release policy: the caller passes the gate policy the ledger holds in force, and a
project file whose `[gates]` differs from it is refused before anything runs (`conveyor release policy propose`
changes it). The attestation records the gate policy it ran under; a release accepts only the one in force.

The sealed set's location and credentials are the gate step's alone (`[gates] secrets`, see `sealed`). The
evaluation runs in the build's image with the network off, an empty environment and only the sealed file (a
private copy) mounted read-only; only the ruled metrics come out, rounded (see `evaluator`). The evaluator's
output may quote sealed rows, so it is never shown: it is kept in a private log under .conveyor/gates/.
"""

from __future__ import annotations

import operator
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.config.gates import GatePolicy
from conveyor.config.schema import RULE
from conveyor.errors import CheckFailed, ConfigError, ConveyorError, NotFoundError
from conveyor.package.attestations import AttestationKind, attesting_identity, write_attestation
from conveyor.package.cache import sha256_file
from conveyor.testing.evaluator import ImageEvaluator, only_ruled
from conveyor.testing.sealed import sealed_copy
from conveyor.testing.statements import gates_statement

if TYPE_CHECKING:
    from conveyor.package.record import BuildRecord
    from conveyor.trust import SigningKey

Progress = Callable[[str], None]
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
CHAMPION_ALIAS = "prod"
LIVE_TAG = "conveyor.live"  # set in the stage's registry by every deployment (conveyor.release.alias)


@dataclass
class GateResult:
    metric: str
    value: float | None
    rule: str
    threshold: float | None
    champion: float | None
    passed: bool
    note: str = ""


@dataclass
class GateReport:
    ok: bool
    results: list[GateResult] = field(default_factory=list)
    champion: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    signed_by: str | None = None
    attestation: str | None = None

    def to_record(self) -> dict[str, object]:
        """The `gates` section of build.json."""
        return {
            "ok": self.ok,
            "champion": self.champion,
            "results": [
                {
                    "metric": r.metric,
                    "value": r.value,
                    "rule": r.rule,
                    "champion": r.champion,
                    "passed": r.passed,
                    "threshold": r.threshold,
                    "note": r.note,
                }
                for r in self.results
            ],
        }

    def to_dict(self) -> dict[str, object]:
        return {**self.to_record(), "signed_by": self.signed_by, "attestation": self.attestation}


def check_rule(metric: str, rule: str, value: float | None, champion: float | None) -> GateResult:
    """One rule (`>= 0.0`, `<= 1.1 * champion`) applied to `value`; champion rules pass when there is none."""
    match = RULE.match(rule)
    if not match:
        raise ConfigError(f"gates.metrics.{metric} = {rule!r} is not a rule", hint="Write e.g. '>= 0.5'.")
    op, number, uses_champion = match["op"], float(match["number"]), bool(match["champion"])
    if value is None:
        return GateResult(metric, None, rule, None, champion, False, "evaluate() did not return this metric")
    if uses_champion:
        if champion is None:
            return GateResult(metric, value, rule, None, None, True, "no champion")
        threshold = number * champion
    else:
        threshold = number
    passed = OPERATORS[op](value, threshold)
    return GateResult(metric, value, rule, threshold, champion, passed)


def require_gate_policy(declared: GatePolicy, in_force: GatePolicy | None, file: Path) -> GatePolicy:
    """The gate policy to run under: the one in force (None: none yet, the project file's is the one the ledger
    will adopt). CheckFailed naming each difference when the project file's `[gates]` is not the one in force."""
    if in_force is None or in_force == declared:
        return declared
    raise CheckFailed(
        f"the [gates] of {file} are not the gate policy the release ledger holds in force:\n  "
        + "\n  ".join(in_force.changes(declared)),
        hint="Gate rules are release policy: a gate result under other rules is never accepted by a release. "
        "To change them: conveyor release policy propose, then the approvers approve it "
        "(conveyor release policy approve N).",
    )


def run_gates(
    build_record: BuildRecord,
    progress: Progress | None = None,
    key: Path | SigningKey | None = None,
    *,
    policy: GatePolicy | None = None,
) -> GateReport:
    """Evaluate the packaged model (and the champion: alias `prod` in prod's registry) on the sealed set inside the
    build's image, apply the rules, write the `gates` summary of build.json and the gate attestation signed by
    `key`'s principal (unsigned, said plainly, without a usable key). `ok=False` when any rule fails.

    `policy` is the gate policy the release ledger holds in force (`conveyor.release.gate_policy_in_force`);
    None when it holds none yet. A project file whose `[gates]` differs from it is refused (CheckFailed)."""
    from conveyor.config import load_project
    from conveyor.package.manifest import check_package

    say = progress or (lambda _message: None)
    project = load_project(build_record.project_root)
    gate_policy = require_gate_policy(GatePolicy.from_config(project.config.gates), policy, project.file)
    identity = attesting_identity(project, key, say)
    rules = dict(gate_policy.metrics)
    evaluate_py = project.root / project.config.project.evaluate
    if not evaluate_py.is_file():
        raise ConfigError(
            f"{evaluate_py} does not exist",
            hint="Write evaluate(model, data) -> {metric: value} there (data: the sealed file's path), "
            "or set [project] evaluate.",
        )
    check_package(build_record.package_dir, build_record.digest)
    evaluator = ImageEvaluator.for_build(build_record, project.state_dir / "gates" / build_record.short, say)
    with sealed_copy(project) as data:
        data_digest = "sha256:" + sha256_file(data)
        say(f"evaluating build {build_record.short} on the sealed set, inside its image with the network off")
        metrics = only_ruled(evaluator.evaluate(evaluate_py, data, "candidate"), rules)
        champion_metrics: dict[str, float] | None = None
        champion_ref = None
        if any((match := RULE.match(rule)) and match["champion"] for rule in rules.values()):
            champion_metrics, champion_ref = _champion_metrics(
                project, build_record, evaluator, evaluate_py, data, say, rules
            )
    results = [
        check_rule(metric, rule, metrics.get(metric), (champion_metrics or {}).get(metric))
        for metric, rule in sorted(rules.items())
    ]
    report = GateReport(ok=all(r.passed for r in results), results=results, champion=champion_ref, metrics=metrics)
    build_record.update("gates", report.to_record())
    statement = gates_statement(build_record, report.to_record(), metrics, data_digest, evaluate_py, gate_policy)
    written = write_attestation(build_record, AttestationKind.GATES, statement, identity)
    report.signed_by = identity.principal if written and identity else None
    report.attestation = str(written) if written else None
    return report


def champion_environment(project: Any) -> Any | None:
    """The environment whose registry holds production (`[release.prod] env`, else an environment named prod)."""
    stage = project.config.release.get("prod")
    name = stage.env if stage and stage.env else ("prod" if "prod" in project.config.environments else None)
    return project.environment(name) if name else None


def require_no_live_release(environment: Any, name: str) -> None:
    """Called when there is no champion alias: champion rules may pass for want of a champion only if prod has
    no live release, which every deployment records as the registered model's tag `conveyor.live.prod`."""
    from mlflow.exceptions import MlflowException

    from conveyor.registry import ModelRegistry

    try:
        tags = ModelRegistry(environment).client.get_registered_model(name).tags or {}
    except MlflowException:  # no such model there: nothing was ever live
        return
    live = tags.get(f"{LIVE_TAG}.{CHAMPION_ALIAS}")
    if live:
        raise CheckFailed(
            f"{CHAMPION_ALIAS} has a live release of {name} (version {live}, the {environment.name} registry "
            f"records), but {name}@{CHAMPION_ALIAS} is missing, so champion rules cannot be checked",
            hint=f"Restore the alias in the {environment.name} registry, or release again to {CHAMPION_ALIAS}.",
        )


def _champion_metrics(
    project: Any,
    build_record: BuildRecord,
    evaluator: ImageEvaluator,
    evaluate_py: Path,
    data: Path,
    say: Progress,
    rules: dict[str, str],
) -> tuple[dict[str, float] | None, str | None]:
    from conveyor.registry import ModelRegistry, materialize

    environment = champion_environment(project)
    if environment is None:
        return None, None
    if build_record.model is None:
        return None, None
    name = build_record.model.name
    try:
        info = ModelRegistry(environment).resolve(f"{name}@{CHAMPION_ALIAS}")
    except NotFoundError:
        require_no_live_release(environment, name)
        say(f"no champion: {name}@{CHAMPION_ALIAS} is not in the {environment.name} registry")
        return None, None
    except ConveyorError as error:
        say(f"no champion ({error.message})")
        return None, None
    say(f"champion: {info.name} version {info.version} in {environment.name}")
    with tempfile.TemporaryDirectory(prefix="conveyor-champion-") as tmp:
        folder = materialize(f"models:/{info.name}/{info.version}", environment, Path(tmp) / "package")
        metrics = evaluator.evaluate(evaluate_py, data, "champion", package=folder)
        return only_ruled(metrics, rules), f"{info.name}/{info.version} ({environment.name})"
