"""The training profile of a model version, made at build time from the lake files its training read.

Training records which lake files it read (`data_files`) and a digest over them (`data_digest`). The build reads
those files from the environment's lake again, checks that they still hash to that digest, and profiles their
columns: the ones the run logged as its `features` param (comma-separated) when it did, else every column. When the
data cannot be reached, has changed, or is not a table conveyor reads (CSV, Parquet), there is no profile, and the
reason says which; the package is built without one and its drift is reported as unavailable.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.drift import TrainingProfile, profile_frame
from conveyor.errors import ConveyorError
from conveyor.lake.lineage import sha256_of_stream

if TYPE_CHECKING:
    from conveyor.config import Environment
    from conveyor.registry import ModelVersionInfo

TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class ProfileOutcome:
    """The profile of the training data, or None and why there is none."""

    profile: TrainingProfile | None
    reason: str | None = None


def _read_table(name: str, data: bytes) -> Any:
    import pandas as pd

    if name.lower().endswith(".parquet"):
        return pd.read_parquet(io.BytesIO(data))
    frame = pd.read_csv(io.BytesIO(data), skipinitialspace=True)  # the census file writes ", " between fields
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _features(info: ModelVersionInfo, columns: list[str]) -> list[str] | None:
    named = [f.strip() for f in info.params.get("features", "").split(",") if f.strip()]
    return named if named and all(f in columns for f in named) else None


def training_profile(environment: Environment, info: ModelVersionInfo) -> ProfileOutcome:
    """Profile the lake files the model version's training read, if they are still what it read."""
    files = [f for f in info.tags.get("data_files", "").split(",") if f]
    recorded = info.tags.get("data_digest", "")
    if not files or not recorded.startswith("sha256:"):
        return ProfileOutcome(None, f"model {info.ref} records no training data read from the lake")
    tables = [f for f in files if posixpath.splitext(f)[1].lower() in TABLE_SUFFIXES]
    if not tables:
        return ProfileOutcome(None, f"its training data ({', '.join(files[:3])}) is not CSV or Parquet")
    try:
        lake = environment.lake()
        contents: dict[str, bytes] = {}
        lines = []
        for name in sorted(files):
            with lake.open(name, "rb") as handle:
                if name in tables:
                    contents[name] = handle.read()
                    digest = hashlib.sha256(contents[name]).hexdigest()
                else:
                    digest = sha256_of_stream(handle)
            lines.append(f"{name}\t{digest}\n")
    except (ConveyorError, OSError) as exc:
        return ProfileOutcome(None, f"its training data could not be read from the {environment.name} lake ({exc})")
    if "sha256:" + hashlib.sha256("".join(lines).encode()).hexdigest() != recorded:
        return ProfileOutcome(
            None, f"the training data in the {environment.name} lake changed since {info.ref} was trained"
        )
    import pandas as pd

    try:
        frames = [_read_table(name, contents[name]) for name in tables]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    except (ValueError, OSError) as exc:
        return ProfileOutcome(None, f"its training data could not be read as a table ({exc})")
    source = {"files": tables, "data_digest": recorded}
    return ProfileOutcome(profile_frame(frame, _features(info, [str(c) for c in frame.columns]), source))
