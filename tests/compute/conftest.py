"""Fixtures of the compute tests: Spark servers on loopback (see tests/spark_servers.py)."""

from spark_servers import spark_cluster, spark_connect

__all__ = ["spark_cluster", "spark_connect"]
