"""Testing what ships: the project's tests against the built package (in its image or a venv from its lock), and
quality gates on the sealed evaluation set."""

from conveyor.testing.gates import GateReport, GateResult, check_rule, run_gates
from conveyor.testing.runner import TestReport, run_tests

__all__ = ["GateReport", "GateResult", "TestReport", "check_rule", "run_gates", "run_tests"]
