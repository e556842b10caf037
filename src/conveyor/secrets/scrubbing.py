"""The environment a process conveyor starts for someone else's code gets: an allowlist, never a copy of ours.

Our own environment may hold every store's credentials (CI variables, `CONVEYOR_SECRETS_*`, cloud tokens), so a
training script or a project's tests get only what a program needs to run: the path, the locale, the terminal,
CA bundles and the engine settings named here, plus what the caller adds.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

KEPT = frozenset(
    {
        "PATH",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "COLORTERM",
        "NO_COLOR",
        "FORCE_COLOR",
        "COLUMNS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "PYTHONHASHSEED",
        "PYTHONUTF8",
        "PYTHONIOENCODING",
        "PYTHONWARNINGS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "JAVA_HOME",
        "SPARK_HOME",
        "SPARK_CONF_DIR",
        "SPARK_LOCAL_IP",
        "PYSPARK_PYTHON",
        "PYSPARK_DRIVER_PYTHON",
        "HADOOP_HOME",
        "HADOOP_CONF_DIR",
        "CONVEYOR_SPARK_MASTER",
        "CONVEYOR_SPARK_DRIVER_MEMORY",
    }
)
KEPT_PREFIXES = ("LC_",)


def minimal_environment(extra: Mapping[str, str] | None = None, *, keep: Iterable[str] = ()) -> dict[str, str]:
    """The allowlisted variables of this process (and `keep`), then `extra`: nothing secret passes by default."""
    allowed = KEPT | set(keep)
    environment = {
        name: value for name, value in os.environ.items() if name in allowed or name.startswith(KEPT_PREFIXES)
    }
    environment.setdefault("PATH", os.defpath)
    environment.update(extra or {})
    return environment
