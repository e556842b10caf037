"""The shape of `conveyor.toml`, validated on load with pydantic.

Unknown keys are refused (a misspelled key would otherwise be silently ignored).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from conveyor.config.computes import accepted_computes, compute_entry
from conveyor.config.targets import target_forms, target_kind

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
PRINCIPAL = re.compile(r'^[^\s,"*?!]+$')
RESERVED_ENVIRONMENT = "gates"
RULE = re.compile(
    r"^\s*(?P<op>>=|<=|>|<|==)\s*(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(?P<champion>\*\s*champion)?\s*$"
)
LOCAL_PORT = re.compile(r"local://(?P<port>\d+)/?")
BATCH_ENV = re.compile(r"batch://(?P<env>[^/]+)/")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def duration_seconds(text: str) -> int:
    """Seconds in a duration such as `2d` or `90m`; ValueError for text that is not one."""
    match = DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: a number and a unit s, m, h, d or w (e.g. 5m)")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]


class ProjectSection(Strict):
    """`[project]`: the project's name and where its parts are."""

    name: Annotated[str, Field(description="project name: lowercase letters, digits, - and _")]
    train: str = "train.py"
    score: str = "score.py"
    code: list[str] = Field(default_factory=lambda: ["inference"], description="code packaged beside score.py")
    tests: str = "tests"
    evaluate: str = "evaluate.py"
    requirements: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("must start with a lowercase letter and hold only a-z, 0-9, - and _ (at most 63)")
        return value


UPLOAD_ROOTS = ("/Volumes/", "/Workspace/")
DEFAULT_TOKEN = "${secret:databricks-token}"  # noqa: S105 -- a reference to a stored secret, not a token


class DatabricksConfig(Strict):
    """`[environments.NAME.databricks]`: the workspace, the cluster and the folder of Databricks job runs.

    The cluster is one of: an existing cluster (`cluster_id`), a new cluster for each run (`job_cluster`, the Jobs
    API's `new_cluster` object), or `serverless = true`. Credentials are `${secret:KEY}` references into the
    environment's store: a token, or a service principal (`client_id` + `client_secret`, with `tenant_id` for an
    Azure one, like the lab's `sp-app-id`, `sp-password` and `sp-tenant-id`).
    """

    host: str = Field(description="workspace URL, e.g. https://adb-1234567890123456.7.azuredatabricks.net")
    upload_path: str = Field(description="/Volumes/CATALOG/SCHEMA/VOLUME/DIR or /Workspace/DIR: code, wheel, results")
    cluster_id: str | None = Field(default=None, description="an existing cluster to run on")
    job_cluster: dict[str, Any] | None = Field(default=None, description="a new cluster per run (Jobs API new_cluster)")
    serverless: bool = Field(default=False, description="run on serverless compute")
    token: str | None = Field(default=None, description="personal access token (default ${secret:databricks-token})")
    client_id: str | None = Field(default=None, description="service principal's application id")
    client_secret: str | None = Field(default=None, description="service principal's secret")
    tenant_id: str | None = Field(default=None, description="Azure tenant of an Azure service principal")
    timeout: str = Field(default="2h", description="how long a run may take before it is cancelled")

    @field_validator("upload_path")
    @classmethod
    def _upload_path(cls, value: str) -> str:
        if not value.startswith(UPLOAD_ROOTS) or ".." in value.split("/"):
            raise ValueError(
                "must be a Unity Catalog volume path /Volumes/CATALOG/SCHEMA/VOLUME/... or a workspace path "
                "/Workspace/..."
            )
        return value.rstrip("/")

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError("must be a number and a unit: s, m, h, d or w (e.g. 2h)")
        return value

    @model_validator(mode="after")
    def _one_cluster_and_one_credential(self) -> DatabricksConfig:
        clusters = [name for name, on in self._clusters().items() if on]
        if len(clusters) != 1:
            chosen = ", ".join(clusters) or "none"
            raise ValueError(
                f'name exactly one cluster: cluster_id = "ID", job_cluster = {{...}} or serverless = true '
                f"(this section names {chosen})"
            )
        if self.client_id and self.token:
            raise ValueError("give either token or client_id + client_secret, not both")
        if bool(self.client_id) != bool(self.client_secret):
            raise ValueError("a service principal needs both client_id and client_secret")
        if self.tenant_id and not self.client_id:
            raise ValueError("tenant_id belongs to a service principal: add client_id and client_secret")
        return self

    def _clusters(self) -> dict[str, bool]:
        return {
            "cluster_id": bool(self.cluster_id),
            "job_cluster": bool(self.job_cluster),
            "serverless": self.serverless,
        }

    def timeout_seconds(self) -> int:
        return duration_seconds(self.timeout)

    def credentials(self) -> dict[str, str]:
        """The credential settings, unresolved: a service principal's, or a token (by default the secret
        `databricks-token`)."""
        if self.client_id and self.client_secret:
            principal = {"client_id": self.client_id, "client_secret": self.client_secret}
            return principal | ({"tenant_id": self.tenant_id} if self.tenant_id else {})
        return {"token": self.token or DEFAULT_TOKEN}


class EnvironmentConfig(Strict):
    """`[environments.NAME]`: where an environment's secrets, data, registry and compute are."""

    secrets: str = Field(description="secret store URL: file://, env://, vault://, azure-keyvault://, databricks://")
    lake: str = Field(description="data lake URL: file://, abfss://, az://, s3://")
    registry: str | None = Field(default=None, description="MLflow tracking URI (default: sqlite in .conveyor/ENV)")
    databricks: DatabricksConfig | None = Field(default=None, description="the Databricks workspace and cluster")
    compute: str = Field(default="local", description=accepted_computes())
    state: str | None = None
    created_by: str | None = None

    @field_validator("compute")
    @classmethod
    def _compute(cls, value: str, info: ValidationInfo) -> str:
        entry = compute_entry(value)
        if entry is None:
            raise ValueError(f"must be one of: {accepted_computes()}")
        if entry.section is not None and entry.section in info.data and info.data[entry.section] is None:
            # (absent from info.data when the section itself failed to validate)
            raise ValueError(f"needs a [{entry.section}] section in this environment, e.g. {entry.example}")
        return value


class RolloutConfig(Strict):
    """`[release.STAGE.rollout]`: the rules a rollout's candidate must keep (else `conveyor rollout watch` aborts
    it), over what window, once how many requests reached it."""

    rules: list[str] = Field(
        default_factory=list, description="e.g. ['error_rate <= 1%', 'p99_ms <= 50', 'psi <= 0.2']"
    )
    min_requests: int = Field(default=100, ge=1, description="requests the candidate needs before a rule counts")
    window: str = Field(default="5m", description="how far back the figures reach (e.g. 5m)")

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: list[str]) -> list[str]:
        from conveyor.config.rollout import BadRule, RolloutRule

        for text in value:
            try:
                RolloutRule.parse(text)
            except BadRule as bad:
                raise ValueError(str(bad)) from None
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError("must be a number and a unit: s, m, h, d or w (e.g. 5m)")
        return value


class ReleaseStageConfig(Strict):
    """`[release.STAGE]`: where a release goes and who must approve it."""

    target: str = Field(description=f"where releases go: {target_forms()}")
    env: str | None = Field(default=None, description="environment whose registry gets the stage alias")
    approvers: list[str] = Field(default_factory=list)
    min_approvals: int = Field(default=0, ge=0)
    requester_may_approve: bool = False
    timeout: str = "2d"
    requires: list[str] = Field(default_factory=list)
    break_glass: list[str] = Field(
        default_factory=list, description="principals whose rollback of this stage needs no approval (marked so)"
    )
    allow_unsandboxed: bool = Field(
        default=False, description="a stage with approvers takes a model trained without a sandbox only when true"
    )
    allow_dirty: bool = Field(
        default=False,
        description="a stage with approvers takes a model trained from uncommitted changes only when true",
    )
    rollout: RolloutConfig | None = Field(
        default=None, description="rules a canary or shadow rollout must keep (conveyor rollout watch)"
    )

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError("must be a number and a unit: s, m, h, d or w (e.g. 2d)")
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        target_kind(value)  # the table of targets says which URLs name one
        port = LOCAL_PORT.fullmatch(value)
        if port and not 1 <= int(port["port"]) <= 65535:
            raise ValueError(f"port {port['port']} is not a TCP port (1-65535)")
        return value

    def timeout_seconds(self) -> int:
        return duration_seconds(self.timeout)


class GatesConfig(Strict):
    """`[gates]`: the sealed evaluation set, in a store of the gate step's own, and the rules a build must pass.

    The sealed set is not a folder of any environment's lake: training opens lakes, and only the gate step opens
    `secrets` (CI hands it over as CONVEYOR_SECRETS_GATES, to the gate step alone).
    """

    secrets: str | None = Field(
        default=None,
        description="the gate step's own secret store URL (CONVEYOR_SECRETS_GATES overrides it)",
    )
    eval_data: str | None = Field(
        default=None,
        description="URL of the sealed evaluation file (file://, s3://, abfss://, az://), e.g. ${secret:eval-data-url}",
    )
    metrics: dict[str, str] = Field(default_factory=dict)

    @field_validator("metrics")
    @classmethod
    def _rules(cls, value: dict[str, str]) -> dict[str, str]:
        for metric, rule in value.items():
            if not RULE.match(rule):
                raise ValueError(f"rule {rule!r} for {metric!r} must look like '>= 0.5', '<= 1.1 * champion' or '< 3'")
        return value


class Sandbox(StrEnum):
    """Whether `conveyor train` must run the script in a filesystem/network sandbox (Linux, bubblewrap)."""

    AUTO = "auto"  # sandboxed where the OS allows it; said plainly where it does not
    REQUIRED = "required"  # refuse to train where the sandbox cannot run (for CI's stage training)


class TrainingConfig(Strict):
    """`[training]`: what a training script reaches besides the environment's lake (which it always gets)."""

    secrets: list[str] = Field(
        default_factory=list,
        description="secret keys train.py may read with ctx.secret(KEY); no other value of the store reaches it",
    )
    sandbox: Sandbox = Field(default=Sandbox.AUTO, description="auto or required")


class LedgerConfig(Strict):
    """`[ledger]`: where releases, approvals and the audit log are kept (default: SQLite in .conveyor/)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://HOST/DB (CONVEYOR_LEDGER_URL overrides it)",
    )


class TrustConfig(Strict):
    """`[trust]`: who may sign (an OpenSSH allowed_signers file beside conveyor.toml) and whose builds count."""

    allowed_signers: str = Field(
        default="allowed_signers", description="OpenSSH allowed_signers file, relative to conveyor.toml"
    )
    builders: list[str] = Field(
        default_factory=lambda: ["ci"], description="principals whose test and gate attestations a release accepts"
    )
    watchers: list[str] = Field(
        default_factory=list, description="principals whose key may abort a rollout that broke a rule (rollout watch)"
    )

    @field_validator("allowed_signers")
    @classmethod
    def _allowed_signers(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a file, e.g. allowed_signers (an OpenSSH allowed_signers file)")
        return value

    @field_validator("builders", "watchers")
    @classmethod
    def _builders(cls, value: list[str]) -> list[str]:
        for name in value:
            if not PRINCIPAL.match(name):
                raise ValueError(
                    f"{name!r} must be a principal of allowed_signers: a plain name without blanks, "
                    "commas, quotes or wildcards (e.g. ci)"
                )
        if len(set(value)) != len(value):
            raise ValueError("names a principal twice")
        return value


class BatchEngineName(StrEnum):
    """Where a pipeline's batch-scoring step runs: in its own process (Arrow) or on the environment's Spark."""

    LOCAL = "local"
    SPARK = "spark"


class BatchStepConfig(Strict):
    """`[pipelines.build.score_batch]`: a step after the build pipeline's `verify` in which the package just built,
    tested and gated scores a dataset of the pipeline environment's lake (`conveyor score-batch --build`)."""

    input: str = Field(description="CSV or Parquet file (or folder of them) in the environment's lake")
    output: str = Field(description="where in that lake to write the scored rows (a Parquet folder, replaced)")
    engine: BatchEngineName = Field(default=BatchEngineName.LOCAL, description="local or spark")

    @field_validator("input", "output")
    @classmethod
    def _lake_path(cls, value: str) -> str:
        parts = value.replace("\\", "/").split("/")
        if not value.strip() or "{" in value or "}" in value or value.startswith("/") or ".." in parts:
            raise ValueError(
                "must be a path inside the environment's lake, e.g. census/2026-11.csv (relative, no '..', no braces)"
            )
        return value

    @model_validator(mode="after")
    def _apart(self) -> BatchStepConfig:
        if self.output.strip("/") == self.input.strip("/"):
            raise ValueError("output must differ from input (the scored rows go to a folder of their own)")
        return self


class BuildPipelineConfig(Strict):
    """`[pipelines.build]`: optional steps of the build pipeline."""

    score_batch: BatchStepConfig | None = None


class PipelinesConfig(Strict):
    """`[pipelines]`: what a project adds to the standard pipelines."""

    build: BuildPipelineConfig = Field(default_factory=BuildPipelineConfig)


class ProjectFile(Strict):
    """The whole of `conveyor.toml`."""

    project: ProjectSection
    environments: dict[str, EnvironmentConfig]
    release: dict[str, ReleaseStageConfig] = Field(default_factory=dict)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)
    pipelines: PipelinesConfig = Field(default_factory=PipelinesConfig)

    @field_validator("environments")
    @classmethod
    def _environments(cls, value: dict[str, EnvironmentConfig]) -> dict[str, EnvironmentConfig]:
        if not value:
            raise ValueError("declare at least one environment, e.g. [environments.dev]")
        for name in value:
            if not NAME.match(name):
                raise ValueError(f"environment name {name!r} must be lowercase letters, digits, - and _")
            if name == RESERVED_ENVIRONMENT:
                raise ValueError(f"{name!r} names the gate step's store (CONVEYOR_SECRETS_GATES): choose another name")
        return value

    @model_validator(mode="after")
    def _stages_name_what_exists(self) -> ProjectFile:
        """Each release stage names declared environments and stages, and can be satisfied at all."""
        declared = ", ".join(self.environments)
        for name, stage in self.release.items():
            where = f"release.{name}"
            if stage.env is not None and stage.env not in self.environments:
                raise ValueError(f"{where}.env names {stage.env!r}, which is not declared (declared: {declared})")
            batch_env = BATCH_ENV.match(stage.target)
            if batch_env and batch_env["env"] not in self.environments:
                raise ValueError(
                    f"{where}.target scores in environment {batch_env['env']!r}, which is not declared "
                    f"(declared: {declared})"
                )
            for required in stage.requires:
                if required not in self.release:
                    raise ValueError(
                        f"{where}.requires names {required!r}, which is not a stage (stages: {', '.join(self.release)})"
                    )
            if stage.min_approvals > len(stage.approvers):
                raise ValueError(
                    f"{where}.min_approvals = {stage.min_approvals} but only {len(stage.approvers)} approvers are "
                    f"named: no release could ever reach {name}; name more in {where}.approvers"
                )
        return self
