"""The MLflow model registry of an environment: register with lineage tags, find, download, alias."""

from conveyor.registry.files import NotRegularFile, check_regular_tree, copy_regular_file, copy_regular_tree
from conveyor.registry.store import ModelRegistry, ModelVersionInfo, materialize, parse_model_spec

__all__ = [
    "ModelRegistry",
    "ModelVersionInfo",
    "NotRegularFile",
    "check_regular_tree",
    "copy_regular_file",
    "copy_regular_tree",
    "materialize",
    "parse_model_spec",
]
