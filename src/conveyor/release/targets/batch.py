"""`batch://ENV/INPUT?output=OUTPUT[&engine=spark]`: a release scores a lake dataset instead of serving requests.

A deployment checks the package folder against the digest the ledger recorded, then scores INPUT (CSV or Parquet
in ENV's lake) with it into OUTPUT, on the local engine or on ENV's Spark. `{release}` in OUTPUT becomes the
release's tag (`v3-r12`), to keep each release's scores; otherwise each deployment replaces OUTPUT, which is
written aside and moved into place only when complete, so a resumed deployment simply scores again. When the
package holds a training profile, the input's drift report is written beside OUTPUT (`OUTPUT.drift.json`).
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from conveyor.errors import ConfigError
from conveyor.release.shipment import check_package
from conveyor.release.targets.base import DeployContext, StepResult, Target, release_tag

FORM = "batch://ENV/INPUT?output=OUTPUT[&engine=local|spark]"


class BatchTarget(Target):
    """Score a lake dataset with the released package (the package recorded in the ledger, verified first)."""

    scheme = "batch"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"output", "engine"})
        self.env = parts.netloc
        self.input = unquote(parts.path.lstrip("/"))
        self.output = (query.get("output") or [""])[0]
        self.engine = (query.get("engine") or ["local"])[0]
        if not self.env or not self.input or not self.output or unknown or self.engine not in ("local", "spark"):
            why = f"unknown parameter {unknown[0]!r}" if unknown else "it names no environment, input or output"
            if self.engine not in ("local", "spark"):
                why = f"engine must be local or spark, not {self.engine!r}"
            raise ConfigError(f"release target {url!r} is not {FORM}: {why}")

    def steps(self) -> list[str]:
        return ["verify", "score"]

    def output_path(self, context: DeployContext) -> str:
        return self.output.replace("{release}", release_tag(context))

    def run_step(self, name: str, context: DeployContext) -> StepResult:
        if name == "verify":
            check_package(context.shipment)
            return StepResult(digest=context.shipment.package_digest, note="package files match the recorded digest")
        if name == "score":
            return self._score(context)
        raise ValueError(f"{type(self).__name__} has no step {name!r}")

    def _score(self, context: DeployContext) -> StepResult:
        from conveyor.batch import score_batch
        from conveyor.config import load_project

        package = check_package(context.shipment)
        environment = load_project(context.state_dir.parent).environment(self.env)
        output = self.output_path(context)
        result = score_batch(environment, self.input, output, package=package, engine=self.engine, overwrite=True)
        note = f"{result.rows} rows of {result.input.path} scored, predictions {', '.join(result.predictions)}"
        if result.drift is not None and result.drift.path:
            note += f"; drift report {result.drift.path}"
        elif result.drift is not None:
            note += f"; drift unavailable: {result.drift.report.reason}"
        return StepResult(
            reference=f"{self.env} lake: {result.output}",
            digest=context.shipment.package_digest,
            engine=str(result.engine),
            note=note,
        )
