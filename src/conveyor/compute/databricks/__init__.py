"""`compute = "databricks"`: training as a one-time Databricks job run (databricks-sdk, Jobs API runs/submit)."""

from conveyor.compute.databricks.compute import DatabricksCompute

__all__ = ["DatabricksCompute"]
