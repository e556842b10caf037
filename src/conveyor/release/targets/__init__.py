"""Deployment targets: the `Target` class of each kind in conveyor.config.targets.TARGETS, found by URL scheme.

Adding a target is one module here (a `Target` subclass) and one entry in that table; a distribution adds one
under the entry-point group `conveyor.targets` (see docs/architecture.md).
"""

from __future__ import annotations

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
    "target_entry",
    "target_for",
]


def target_class(kind: TargetKind) -> type[Target]:
    """The class a table entry names (`module:Class`); it must be a Target for the entry's scheme."""
    found = kind.load()
    if not (isinstance(found, type) and issubclass(found, Target) and found.scheme == kind.name):
        raise TypeError(f"{kind.implementation} is not a Target for {kind.name}://")
    return found


def target_entry(url: str) -> TargetKind:
    """The table's entry for a `[release.STAGE] target` URL; ConfigError naming the accepted forms otherwise."""
    try:
        return target_kind(url)
    except ValueError as exc:
        raise ConfigError(f"release target {url!r} {exc}") from None


def target_for(url: str) -> Target:
    """The target a `[release.STAGE] target` URL names; its steps must be the ones its entry declares."""
    kind = target_entry(url)
    target = target_class(kind)(url)
    if tuple(target.steps()) != kind.steps:
        raise TypeError(f"{kind.implementation} runs steps {target.steps()}, its entry declares {list(kind.steps)}")
    return target
