"""Rollout rules: `[release.STAGE.rollout]`'s checks on a candidate's figures (`error_rate <= 1%`, `p99_ms <= 50`).

A rule names one metric of `conveyor rollout status`, a comparison and a number (a `%` divides by 100). A watcher
(`conveyor rollout watch`) evaluates every rule on the candidate's figures over the stage's window once at least
`min_requests` reached it, and aborts the rollout, as a signed event, on the first rule broken.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

METRICS: dict[str, str] = {
    "error_rate": "share of the candidate's requests answered 5xx or not at all (0-1; write 1% or 0.01)",
    "p50_ms": "median latency of the candidate's requests, in milliseconds",
    "p99_ms": "99th percentile latency of the candidate's requests, in milliseconds",
    "psi": "the largest population stability index of any feature, live inputs against the training profile",
    "ks_pvalue": "the smallest Kolmogorov-Smirnov p-value of any numeric feature (small: the inputs drifted)",
    "shadow_differs": "share of shadowed requests whose answer differs from the live release's (0-1)",
}
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
RULE = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(%?)\s*$")


class BadRule(ValueError):
    """A rule that is not `METRIC OP NUMBER`, or names a metric `rollout status` does not measure."""


@dataclass(frozen=True)
class RolloutRule:
    """One rule as written, and what it means."""

    text: str
    metric: str
    comparison: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> RolloutRule:
        match = RULE.match(text)
        if match is None:
            raise BadRule(f"rule {text!r} must look like 'error_rate <= 1%' or 'p99_ms <= 50'")
        metric, comparison, number, percent = match.groups()
        if metric not in METRICS:
            raise BadRule(f"rule {text!r} names metric {metric!r}, which is not measured; known: {', '.join(METRICS)}")
        return cls(text.strip(), metric, comparison, float(number) / (100 if percent else 1))

    def holds(self, figures: Mapping[str, float | None]) -> bool | None:
        """Whether the figures keep the rule; None when the figure is not known (e.g. no drift profile)."""
        value = figures.get(self.metric)
        return None if value is None else COMPARISONS[self.comparison](value, self.threshold)
