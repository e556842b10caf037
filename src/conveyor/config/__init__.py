"""The project file (`conveyor.toml`), its environments and `${secret:KEY}` resolution."""

from conveyor.config.environment import Environment
from conveyor.config.project import PROJECT_FILE, Project, find_project_root, load_project
from conveyor.config.schema import EnvironmentConfig, GatesConfig, ProjectFile, ReleaseStageConfig

__all__ = [
    "PROJECT_FILE",
    "Environment",
    "EnvironmentConfig",
    "GatesConfig",
    "Project",
    "ProjectFile",
    "ReleaseStageConfig",
    "find_project_root",
    "load_project",
]
