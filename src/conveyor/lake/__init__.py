"""An environment's data lake: an fsspec filesystem rooted at its URL, confined to it, logging what is read."""

from conveyor.errors import LakePathMissing, LakePathOutside
from conveyor.lake.confinement import ConfinedFileSystem
from conveyor.lake.lake import Lake, open_lake
from conveyor.lake.lineage import LakeRead
from conveyor.lake.location import LakeLocation, parse_lake_url

__all__ = [
    "ConfinedFileSystem",
    "Lake",
    "LakeLocation",
    "LakePathMissing",
    "LakePathOutside",
    "LakeRead",
    "open_lake",
    "parse_lake_url",
]
