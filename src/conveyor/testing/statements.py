"""What `conveyor test` and `conveyor gate` attest, as in-toto Statements about the build's package and image.

- Tests: the in-toto test-result predicate (https://in-toto.io/attestation/test-result/v0.1): `result`
  PASSED or FAILED, `configuration` (the tests' tree digest, and the image or requirements lock they ran on),
  `passedTests`, `warnedTests`, `failedTests`, and `finishedOn` (when the run ended). Its subjects are the
  package, and the image when the tests ran in it.
- Gates: `GATE_RESULT`: `result`, the `metrics` measured, each rule with its threshold, champion value and
  verdict, the `champion` compared with, the gate `policy` it ran under (the `[gates]` rules, `eval_data` and
  `secrets` as the project file writes them: a release accepts it only under the same policy), `configuration`
  (digests of the sealed evaluation set and of evaluate.py; never its location) and `finishedOn`. Its subjects
  are the package and the image.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conveyor.package.attestations import FAILED, GATE_RESULT, PASSED
from conveyor.package.manifest import digest_of, hash_files
from conveyor.package.provenance import build_subjects
from conveyor.trust import TEST_RESULT, Statement

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.config.gates import GatePolicy
    from conveyor.package.record import BuildRecord
    from conveyor.testing.reports import JunitOutcomes


def _sha256(digest: str) -> dict[str, str]:
    return {"sha256": digest.removeprefix("sha256:")}


def finished_on() -> str:
    """When a run ended, signed with its result (as SLSA's `finishedOn`): each run's attestation is its own, so
    the latest run's envelope can be told from an older one's."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def tree_digest(folder: Path) -> str:
    """`sha256:HEX` of a folder's files (names and contents, caches left out), as a package's is computed."""
    return digest_of({"files": hash_files(folder)})


def tests_statement(
    record: BuildRecord, ok: bool, outcomes: JunitOutcomes, tests: Path, ran_on: tuple[str, str]
) -> Statement:
    """The test-result Statement of one run. `ran_on` is ("image", image digest) or ("requirements.lock", digest)."""
    in_image = ran_on[0] == "image"
    predicate: dict[str, Any] = {
        "result": PASSED if ok else FAILED,
        "configuration": [
            {"name": "tests", "digest": _sha256(tree_digest(tests))},
            {"name": ran_on[0], "digest": _sha256(ran_on[1])},
        ],
        "passedTests": list(outcomes.passed),
        "warnedTests": [],
        "failedTests": list(outcomes.failed),
        "finishedOn": finished_on(),
    }
    return Statement(build_subjects(record, image=in_image), TEST_RESULT, predicate)


def gates_statement(
    record: BuildRecord,
    report: dict[str, Any],
    metrics: dict[str, float],
    data_digest: str,
    evaluate_py: Path,
    policy: GatePolicy,
) -> Statement:
    """The gate-result Statement of one gate run (`report` is the gate report's record: ok, champion, results;
    `data_digest` the sealed set's sha256, never its location)."""
    predicate = {
        "result": PASSED if report.get("ok") else FAILED,
        "metrics": dict(metrics),
        "rules": list(report.get("results", [])),
        "champion": report.get("champion"),
        "policy": policy.to_json(),
        "configuration": [
            {"name": "sealed evaluation set", "digest": _sha256(data_digest)},
            {"name": evaluate_py.name, "digest": {"sha256": hashlib.sha256(evaluate_py.read_bytes()).hexdigest()}},
        ],
        "finishedOn": finished_on(),
    }
    return Statement(build_subjects(record), GATE_RESULT, predicate)
