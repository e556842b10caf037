"""Deployment targets: the `Target` class of each kind in conveyor.config.targets.TARGETS, found by URL scheme.

Adding a target is one module here (a `Target` subclass) and one entry in that table.
"""

from __future__ import annotations

import importlib

from conveyor.config.targets import TARGETS, TargetKind, target_kind
from conveyor.errors import ConfigError
from conveyor.release.targets.base import DeployContext, StepResult, Target, release_tag

__all__ = [
    "TARGETS",
    "DeployContext",
    "StepResult",
    "Target",
    "TargetKind",
    "release_tag",
    "target_class",
    "target_for",
]


def target_class(kind: TargetKind) -> type[Target]:
    """The class a table entry names (`module:Class`); it must be a Target for the entry's scheme."""
    module, _, name = kind.implementation.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, Target) and found.scheme == kind.scheme):
        raise TypeError(f"{kind.implementation} is not a Target for {kind.scheme}://")
    return found


def target_for(url: str) -> Target:
    """The target a `[release.STAGE] target` URL names; ConfigError naming the accepted forms otherwise."""
    try:
        kind = target_kind(url)
    except ValueError as exc:
        raise ConfigError(f"release target {url!r} {exc}") from None
    return target_class(kind)(url)
