"""Gated releases: a ledger of signed, chained events; policies recorded with each request; deployments that ship
only the digests the ledger recorded, to OCI registries or local servers.

Python API (each function is what one `conveyor` command calls):

    from conveyor.release import create_release, promote, approve, rollback, history
    qa = create_release(project, "3f9a2c", "qa", key=Path("~/.ssh/ci"))     # attested build; qa: deployed now
    p = promote(project, qa.id, "prod", key=carol_key)                      # pending under prod's recorded policy
    approve(project, p.id, key=alice_key)                                   # deployed once the count is reached
    rollback(project, "prod", key=alice_key)                                # a release too: needs approvals
    history(project, "prod")                                                # with verified signers, attestations

The names are imported on first use, so `import conveyor.release` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.release.api import (
        AuditEntry,
        approve,
        approve_policy,
        audit_entries,
        change_rollout,
        create_release,
        deploy_release,
        gate_policy_in_force,
        history,
        list_releases,
        policy_status,
        promote,
        propose_policy,
        read_snapshot,
        rebuild_releases_table,
        reject,
        resume,
        rollback,
        rollout_status,
        show_release,
        shut_down_stage,
        stop_stage,
        verify_ledger,
        watch_rollout,
    )
    from conveyor.release.audit import ChainReport
    from conveyor.release.monitor import RolloutStatus, VersionFigures, WatchOutcome
    from conveyor.release.policy import PolicyRefused
    from conveyor.release.releases import PolicyStatus, StopReport, parse_time
    from conveyor.release.status import ReleaseKind, ReleaseStatus
    from conveyor.release.views import HistoryEntry, LedgerSnapshot, ReleaseView

__all__ = [
    "AuditEntry",
    "ChainReport",
    "HistoryEntry",
    "LedgerSnapshot",
    "PolicyRefused",
    "PolicyStatus",
    "ReleaseKind",
    "ReleaseStatus",
    "ReleaseView",
    "RolloutStatus",
    "StopReport",
    "VersionFigures",
    "WatchOutcome",
    "approve",
    "approve_policy",
    "audit_entries",
    "change_rollout",
    "create_release",
    "deploy_release",
    "gate_policy_in_force",
    "history",
    "list_releases",
    "parse_time",
    "policy_status",
    "promote",
    "propose_policy",
    "read_snapshot",
    "rebuild_releases_table",
    "reject",
    "resume",
    "rollback",
    "rollout_status",
    "show_release",
    "shut_down_stage",
    "stop_stage",
    "verify_ledger",
    "watch_rollout",
]
_ELSEWHERE = {
    "ChainReport": "conveyor.release.audit",
    "PolicyRefused": "conveyor.release.policy",
    "PolicyStatus": "conveyor.release.releases",
    "parse_time": "conveyor.release.releases",
    "StopReport": "conveyor.release.releases",
    "ReleaseKind": "conveyor.release.status",
    "ReleaseStatus": "conveyor.release.status",
    "HistoryEntry": "conveyor.release.views",
    "ReleaseView": "conveyor.release.views",
    "LedgerSnapshot": "conveyor.release.views",
    "RolloutStatus": "conveyor.release.monitor",
    "VersionFigures": "conveyor.release.monitor",
    "WatchOutcome": "conveyor.release.monitor",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'conveyor.release' has no attribute {name!r}")
    return getattr(importlib.import_module(_ELSEWHERE.get(name, "conveyor.release.api")), name)
