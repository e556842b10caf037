"""The shape of `conveyor.toml`, validated on load with pydantic.

Unknown keys are refused (a misspelled key would otherwise be silently ignored).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
COMPUTE = re.compile(r"^(local|spark|spark://\S+|sc://\S+|databricks(://\S*)?)$")
DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
PRINCIPAL = re.compile(r'^[^\s,"*?!]+$')
RESERVED_ENVIRONMENT = "gates"
RULE = re.compile(r"^\s*(>=|<=|>|<|==)\s*(-?\d+(\.\d+)?)\s*(\*\s*champion)?\s*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class EnvironmentConfig(Strict):
    """`[environments.NAME]`: where an environment's secrets, data, registry and compute are."""

    secrets: str = Field(description="secret store URL: file://, env://, vault://, azure-keyvault://, databricks://")
    lake: str = Field(description="data lake URL: file://, abfss://, az://, s3://")
    registry: str | None = Field(default=None, description="MLflow tracking URI (default: sqlite in .conveyor/ENV)")
    compute: str = Field(default="local", description="local, spark, spark://HOST:PORT, sc://HOST, databricks")
    state: str | None = None
    created_by: str | None = None

    @field_validator("compute")
    @classmethod
    def _compute(cls, value: str) -> str:
        if not COMPUTE.match(value):
            raise ValueError("must be local, spark, spark://HOST:PORT, sc://HOST or databricks")
        return value


class ReleaseStageConfig(Strict):
    """`[release.STAGE]`: where a release goes and who must approve it."""

    target: str = Field(description="oci://HOST/REPO or local://PORT")
    env: str | None = Field(default=None, description="environment whose registry gets the stage alias")
    approvers: list[str] = Field(default_factory=list)
    min_approvals: int = Field(default=0, ge=0)
    requester_may_approve: bool = False
    timeout: str = "2d"
    requires: list[str] = Field(default_factory=list)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        if not DURATION.match(value):
            raise ValueError("must be a number and a unit: s, m, h, d or w (e.g. 2d)")
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if not (value.startswith("oci://") or value.startswith("local://")):
            raise ValueError("must start with oci:// or local://")
        return value

    def timeout_seconds(self) -> int:
        match = DURATION.match(self.timeout)
        assert match is not None  # validated above
        return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]


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

    @field_validator("allowed_signers")
    @classmethod
    def _allowed_signers(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a file, e.g. allowed_signers (an OpenSSH allowed_signers file)")
        return value

    @field_validator("builders")
    @classmethod
    def _builders(cls, value: list[str]) -> list[str]:
        for name in value:
            if not PRINCIPAL.match(name):
                raise ValueError(
                    f"builder {name!r} must be a principal of allowed_signers: a plain name without blanks, "
                    "commas, quotes or wildcards (e.g. ci)"
                )
        if len(set(value)) != len(value):
            raise ValueError("names a builder twice")
        return value


class ProjectFile(Strict):
    """The whole of `conveyor.toml`."""

    project: ProjectSection
    environments: dict[str, EnvironmentConfig]
    release: dict[str, ReleaseStageConfig] = Field(default_factory=dict)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    trust: TrustConfig = Field(default_factory=TrustConfig)

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
