"""Release policies: each stage's rules, and the policy set the ledger holds in force for the whole project.

A `PolicySet` is the `[release.*]` sections, the `[trust] builders`, the principal → key pairs of
allowed_signers (with their valid-after/valid-before windows, in UTC: a changed window is a policy change) and
the `[gates]` rules (with the sealed set's `eval_data` and `secrets` settings as written), as one canonical JSON
document with a digest. The ledger adopts the first one it sees (the team's, when it creates the ledger; see
`adoption`) and from then on holds it in force: a request records its stage's section
(canonical JSON and digest) and must match the policy in force, so a copied or edited project file cannot lower
the bar.

A changed policy is proposed (signed) and takes force only once it is approved under the policy in force:

- who may approve: the approvers of every stage that names approvers (min_approvals 0 included), never the
  proposer (whatever `requester_may_approve` says);
- how many: every stage's own `min_approvals` from its own approvers, and in all at least the `min_approvals` of
  the strictest stage (at least one);
- a policy in which no stage names approvers has no one to ask: a proposal under it takes force at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from conveyor.config.gates import GatePolicy
from conveyor.config.rollout import RolloutRule
from conveyor.config.schema import DURATION, duration_seconds
from conveyor.errors import CheckFailed, ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.config import Project


class PolicyRefused(CheckFailed):
    """The policy does not allow what was asked (exit code 1)."""


def canonical(value: Any) -> bytes:
    """The one JSON text of `value` that is hashed and signed (sorted keys, no blanks, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def digest_of(value: Any) -> str:
    return "sha256:" + hashlib.sha256(canonical(value)).hexdigest()


@dataclass(frozen=True)
class RolloutPolicy:
    """`[release.STAGE.rollout]` as recorded: the rules a candidate keeps, the window, the requests before they
    count."""

    rules: tuple[str, ...]
    min_requests: int = 100
    window: str = "5m"

    def to_json(self) -> dict[str, Any]:
        return {"rules": list(self.rules), "min_requests": self.min_requests, "window": self.window}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RolloutPolicy:
        return cls(
            tuple(str(r) for r in data.get("rules", ())),
            int(data.get("min_requests", 100)),
            str(data.get("window", "5m")),
        )

    def parsed(self) -> list[RolloutRule]:
        return [RolloutRule.parse(text) for text in self.rules]

    @property
    def window_seconds(self) -> int:
        return duration_seconds(self.window)


@dataclass(frozen=True)
class StagePolicy:
    """The rules of one stage, as recorded with each request to it."""

    stage: str
    target: str
    env: str | None
    approvers: tuple[str, ...]
    min_approvals: int
    requester_may_approve: bool
    timeout: str
    requires: tuple[str, ...]
    break_glass: tuple[str, ...]
    allow_unsandboxed: bool = False
    allow_dirty: bool = False
    rollout: RolloutPolicy | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stage": self.stage,
            "target": self.target,
            "env": self.env,
            "approvers": list(self.approvers),
            "min_approvals": self.min_approvals,
            "requester_may_approve": self.requester_may_approve,
            "timeout": self.timeout,
            "requires": list(self.requires),
            "break_glass": list(self.break_glass),
        }
        for name in ("allow_unsandboxed", "allow_dirty"):  # written only when set: older policies keep their digest
            if getattr(self, name):
                data[name] = True
        if self.rollout is not None:
            data["rollout"] = self.rollout.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StagePolicy:
        return cls(
            stage=str(data["stage"]),
            target=str(data["target"]),
            env=data.get("env"),
            approvers=tuple(data.get("approvers", ())),
            min_approvals=int(data.get("min_approvals", 0)),
            requester_may_approve=bool(data.get("requester_may_approve", False)),
            timeout=str(data.get("timeout", "2d")),
            requires=tuple(data.get("requires", ())),
            break_glass=tuple(data.get("break_glass", ())),
            allow_unsandboxed=bool(data.get("allow_unsandboxed", False)),
            allow_dirty=bool(data.get("allow_dirty", False)),
            rollout=RolloutPolicy.from_json(data["rollout"]) if data.get("rollout") is not None else None,
        )

    @cached_property
    def digest(self) -> str:  # frozen: computed once (a ledger's fold asks for it at every event)
        return digest_of(self.to_json())

    @property
    def needs_approval(self) -> bool:
        return self.min_approvals > 0

    @property
    def timeout_delta(self) -> timedelta:
        match = DURATION.match(self.timeout)
        if match is None:
            raise ConfigError(f"release.{self.stage}.timeout = {self.timeout!r} is not a duration such as 2d")
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
        return timedelta(seconds=int(match.group(1)) * unit)

    def describe_approvers(self) -> str:
        return ", ".join(self.approvers) or "none"

    def check_approver(self, principal: str, requester: str, release_id: int) -> None:
        """Refuse a principal who is not a named approver, or the requester unless the policy allows it."""
        if principal not in self.approvers:
            raise PolicyRefused(
                f"{principal} is not an approver of {self.stage}, so their approval of release {release_id} is refused",
                hint=f"Approvers of {self.stage} under the policy recorded with the release: "
                f"{self.describe_approvers()}. An approval is signed with the approver's own key (--key PATH).",
            )
        if principal == requester and not self.requester_may_approve:
            raise PolicyRefused(
                f"{principal} requested release {release_id} and may not approve it",
                hint=f"Another approver of {self.stage} must approve ({self.describe_approvers()}); the recorded "
                f"policy says requester_may_approve = false.",
            )

    def check_may_reject(self, principal: str, requester: str, release_id: int) -> None:
        if principal not in self.approvers and principal != requester:
            raise PolicyRefused(
                f"{principal} may not reject release {release_id}: only approvers of {self.stage} or its requester may",
                hint=f"Approvers of {self.stage}: {self.describe_approvers()}.",
            )


@dataclass(frozen=True)
class PolicySet:
    """Every stage's policy, the builders, the signers' keys and the gate rules: what the ledger holds in force.

    `gates` is None only in a policy recorded before gate rules were part of it (such a ledger needs a proposal
    that records them before a gate or a release accepts any)."""

    stages: dict[str, StagePolicy]
    builders: tuple[str, ...]
    signers: tuple[tuple[str, ...], ...]  # (principal, key) or (principal, key, validity options)
    gates: GatePolicy | None = None
    watchers: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stages": {name: policy.to_json() for name, policy in sorted(self.stages.items())},
            "builders": list(self.builders),
            "signers": [list(pair) for pair in self.signers],
        }
        if self.gates is not None:
            data["gates"] = self.gates.to_json()
        if self.watchers:  # written only when named: older policies keep their digest
            data["watchers"] = list(self.watchers)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicySet:
        stages = {name: StagePolicy.from_json(stage) for name, stage in dict(data["stages"]).items()}
        signers = tuple(sorted(tuple(str(part) for part in entry) for entry in data.get("signers", ())))
        gates = GatePolicy.from_json(data["gates"]) if data.get("gates") is not None else None
        return cls(stages, tuple(data.get("builders", ())), signers, gates, tuple(data.get("watchers", ())))

    @cached_property
    def digest(self) -> str:  # frozen: computed once (a ledger's fold asks for it at every event)
        return digest_of(self.to_json())

    @property
    def allowed_signers_text(self) -> str:
        """The signers as an OpenSSH allowed_signers file (principal, then key), for verifying signatures."""
        return "".join(
            f"{entry[0]} {entry[2]} {entry[1]}\n" if len(entry) > 2 else f"{entry[0]} {entry[1]}\n"
            for entry in self.signers
        )

    def signer_keys(self) -> set[tuple[str, str]]:
        """(principal, key) of every signer, whatever its validity window."""
        return {(entry[0], entry[1]) for entry in self.signers}

    def stage(self, name: str, source: str = "the policy in force") -> StagePolicy:
        if name not in self.stages:
            raise ConfigError(
                f"stage {name!r} is not declared in {source}",
                hint=f"Declared stages: {', '.join(sorted(self.stages)) or 'none'}. Add a [release.{name}] section "
                "with a target (a new stage is a policy change: conveyor release policy propose).",
            )
        return self.stages[name]

    def deciders(self) -> set[str]:
        """Who may approve a change of this policy: the approvers of every stage that names approvers."""
        return {principal for stage in self.stages.values() for principal in stage.approvers}

    def guarded(self) -> list[StagePolicy]:
        """Stages that need approvals: their approvers decide a change of policy."""
        return [policy for policy in self.stages.values() if policy.needs_approval]

    def changes(self, other: PolicySet) -> list[str]:
        """What `other` changes from this set, one line each, for messages."""
        lines = []
        for name in sorted(set(self.stages) | set(other.stages)):
            mine, theirs = self.stages.get(name), other.stages.get(name)
            if mine is None:
                lines.append(f"adds stage {name}")
            elif theirs is None:
                lines.append(f"removes stage {name}")
            else:
                old, new = mine.to_json(), theirs.to_json()
                lines += [f"release.{name}.{k}: {old[k]!r} → {new[k]!r}" for k in sorted(old) if old[k] != new[k]]
        if self.builders != other.builders:
            lines.append(f"trust.builders: {list(self.builders)} → {list(other.builders)}")
        if self.watchers != other.watchers:
            lines.append(f"trust.watchers: {list(self.watchers)} → {list(other.watchers)}")
        if self.gates != other.gates:
            if self.gates is None or other.gates is None:
                lines.append(f"gates: {_gates_text(self.gates)} → {_gates_text(other.gates)}")
            else:
                lines += self.gates.changes(other.gates)
        mine_signers, their_signers = set(self.signers), set(other.signers)
        lines += [f"adds signer {_signer_text(entry)}" for entry in sorted(their_signers - mine_signers)]
        lines += [f"removes signer {_signer_text(entry)}" for entry in sorted(mine_signers - their_signers)]
        return lines

    @classmethod
    def from_project(cls, project: Project) -> PolicySet:
        """The policy set a project file declares (read with its allowed_signers), checked for consistency."""
        from conveyor.trust import AllowedSigners

        path = allowed_signers_path(project)
        allowed = AllowedSigners.load(path)
        signers = sorted(
            {
                (entry.name, entry.key.openssh(), *((entry.options,) if entry.options else ()))
                for entry in allowed.entries
                if entry.name and entry.allows_namespace("conveyor")
            }
        )
        stages = {}
        for name, config in project.config.release.items():
            stages[name] = StagePolicy(
                stage=name,
                target=config.target,
                env=config.env,
                approvers=tuple(config.approvers),
                min_approvals=config.min_approvals,
                requester_may_approve=config.requester_may_approve,
                timeout=config.timeout,
                requires=tuple(config.requires),
                break_glass=tuple(config.break_glass),
                allow_unsandboxed=config.allow_unsandboxed,
                allow_dirty=config.allow_dirty,
                rollout=None
                if config.rollout is None
                else RolloutPolicy(tuple(config.rollout.rules), config.rollout.min_requests, config.rollout.window),
            )
        gates = GatePolicy.from_config(project.config.gates)
        trust = project.config.trust
        policy = cls(stages, tuple(trust.builders), tuple(signers), gates, tuple(trust.watchers))
        policy.check(project.file, path)
        return policy

    def gate_policy(self) -> GatePolicy:
        """The gate rules in force; PolicyRefused when this policy predates recorded gate rules."""
        if self.gates is None:
            raise PolicyRefused(
                "the policy the ledger holds in force records no [gates] rules (it was adopted before gate rules "
                "were part of the release policy), so no gate result can be checked against it",
                hint="Record the project's gate rules: conveyor release policy propose, then have the approvers "
                "approve it (conveyor release policy approve N).",
            )
        return self.gates

    def check(self, file: Path, allowed_signers: Path) -> None:
        """Refuse a policy no one could satisfy, one naming principals allowed_signers does not list, or one where a
        key names two principals (who signed would be ambiguous: one person could approve twice)."""
        known = {entry[0] for entry in self.signers}
        names_of_key: dict[str, set[str]] = {}
        for entry in self.signers:
            names_of_key.setdefault(entry[1], set()).add(entry[0])
        for key, sharing in names_of_key.items():
            if len(sharing) > 1:
                from conveyor.trust import PublicKey

                first, second, *_ = sorted(sharing)
                raise ConfigError(
                    f"{allowed_signers} lists one key ({PublicKey.parse(key).fingerprint}) under two names, "
                    f"{first} and {second}",
                    hint="Each key names one person or CI job: give each its own key (ssh-keygen -t ed25519) and "
                    "list each key once.",
                )
        for name, stage in self.stages.items():
            if stage.min_approvals > len(stage.approvers):
                raise ConfigError(
                    f"release.{name}.min_approvals = {stage.min_approvals} but only {len(stage.approvers)} approvers "
                    f"are named in {file}",
                    hint=f"Name at least {stage.min_approvals} principals in release.{name}.approvers.",
                )
            for required in stage.requires:
                if required not in self.stages:
                    raise ConfigError(f"release.{name}.requires names {required!r}, which is not a declared stage")
            for role, names in (("approvers", stage.approvers), ("break_glass", stage.break_glass)):
                for principal in names:
                    if principal not in known:
                        raise ConfigError(
                            f"release.{name}.{role} names {principal}, who has no key in {allowed_signers}",
                            hint=f"Add the line `{principal} ssh-ed25519 AAAA…` (their public key) to "
                            f"{allowed_signers.name} and commit it.",
                        )
        for role, principals in (("builders", self.builders), ("watchers", self.watchers)):
            for principal in principals:
                if principal not in known:
                    raise ConfigError(
                        f"trust.{role} names {principal}, who has no key in {allowed_signers}",
                        hint=f"Add their public key to {allowed_signers.name}: `{principal} ssh-ed25519 AAAA…`.",
                    )


def _signer_text(entry: tuple[str, ...]) -> str:
    key = entry[1]
    window = f" {entry[2]}" if len(entry) > 2 else ""
    return f"{entry[0]} ({key.split()[0]} …{key[-8:]}){window}"


def _gates_text(gates: GatePolicy | None) -> str:
    return "not recorded" if gates is None else repr(gates.to_json())


def allowed_signers_path(project: Project) -> Path:
    """`[trust] allowed_signers`, relative to the project file."""
    return project.root / project.config.trust.allowed_signers


def require_committed(project: Project) -> str | None:
    """In a git work tree, the policy a ledger adopts must be the committed one: conveyor.toml and allowed_signers
    as at HEAD, so the ledger's policy history follows the repository's reviewed history. Returns HEAD's commit
    (None outside a git work tree)."""
    import shutil
    import subprocess

    git = shutil.which("git")
    files = [project.file, allowed_signers_path(project)]
    if git is None:
        return None
    inside = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree"], cwd=project.root, capture_output=True, text=True, check=False
    )
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    names = [str(path.relative_to(project.root)) for path in files]
    tracked = subprocess.run(
        [git, "ls-files", "--error-unmatch", "--", *names], cwd=project.root, capture_output=True, check=False
    )
    changed = subprocess.run(
        [git, "diff", "--quiet", "HEAD", "--", *names], cwd=project.root, capture_output=True, check=False
    )
    if tracked.returncode != 0 or changed.returncode != 0:
        raise PolicyRefused(
            f"{' and '.join(names)} differ from what is committed (git HEAD); a ledger adopts only a committed policy",
            hint=f"Commit them (after review): git add {' '.join(names)} && git commit, then run this again.",
        )
    head = subprocess.run(
        [git, "rev-parse", "HEAD"], cwd=project.root, capture_output=True, text=True, check=False
    ).stdout.strip()
    return head or None
