"""Three conveyor plug-ins: `folder://PATH` releases, the `inline` compute and `memory://` secret stores.

The entries are all this module holds: conveyor reads them while it checks a project file, and imports the
classes they name (in `.classes`) only when one is used.
"""

from __future__ import annotations

from conveyor.config.computes import ComputeEntry
from conveyor.config.targets import TargetKind
from conveyor.secrets import SecretBackend

TARGET = TargetKind(
    "folder",
    "conveyor_example_plugins.classes:FolderTarget",
    "the release's package digest is written to PATH/STAGE.json",
    form="folder://PATH",
    pattern=r"folder:///\S+",
    steps=("write",),
)
CLASHING_TARGET = TargetKind(
    "oci", "conveyor_example_plugins.classes:FolderTarget", "not conveyor's oci", form="oci://X", pattern=".*", steps=()
)
COMPUTE = ComputeEntry("inline", "conveyor_example_plugins.classes:InlineCompute", "not a real engine", form="inline")
STORE = SecretBackend(
    "memory",
    "conveyor_example_plugins.classes:MemoryStore.from_url",
    "a dictionary in this process",
    form="memory://NAME",
)
