"""The project file (`conveyor.toml`), its environments and `${secret:KEY}` resolution."""

from conveyor.config.environment import Environment
from conveyor.config.project import PROJECT_FILE, Project, find_project_root, load_project
from conveyor.config.schema import EnvironmentConfig, GatesConfig, ProjectFile, ReleaseStageConfig
from conveyor.config.secret_check import SecretsCheck, check_secrets

__all__ = [
    "PROJECT_FILE",
    "Environment",
    "EnvironmentConfig",
    "GatesConfig",
    "Project",
    "ProjectFile",
    "ReleaseStageConfig",
    "SecretsCheck",
    "check_secrets",
    "find_project_root",
    "load_project",
]
