"""The project file (`conveyor.toml`), its environments and `${secret:KEY}` resolution; the tables of computes and
deployment targets the project file is checked against."""

from conveyor.config.computes import COMPUTES
from conveyor.config.environment import Environment
from conveyor.config.project import (
    ENV_VARIABLE,
    PROJECT_FILE,
    Project,
    chosen_environment,
    find_project_root,
    load_project,
)
from conveyor.config.schema import EnvironmentConfig, GatesConfig, ProjectFile, ReleaseStageConfig, duration_seconds
from conveyor.config.secret_check import SecretsCheck, check_secrets
from conveyor.config.targets import TARGETS

__all__ = [
    "COMPUTES",
    "ENV_VARIABLE",
    "PROJECT_FILE",
    "TARGETS",
    "Environment",
    "EnvironmentConfig",
    "GatesConfig",
    "Project",
    "ProjectFile",
    "ReleaseStageConfig",
    "SecretsCheck",
    "check_secrets",
    "chosen_environment",
    "duration_seconds",
    "find_project_root",
    "load_project",
]
