"""The MLflow model registry of an environment: register with lineage tags, find, download, alias."""

from conveyor.registry.store import ModelRegistry, ModelVersionInfo, materialize, parse_model_spec

__all__ = ["ModelRegistry", "ModelVersionInfo", "materialize", "parse_model_spec"]
