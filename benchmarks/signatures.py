"""Signature benchmark: conveyor's in-process sshsig signing and verification against OpenSSH's `ssh-keygen -Y`
for the same keys and messages, as a ledger of many signed events and a build's attestations need them.

Run: .venv/bin/python benchmarks/signatures.py [--events 2000] [--openssh 100]

Every signature conveyor makes here is also accepted by `ssh-keygen -Y verify` (checked on a sample), and every
signature OpenSSH makes is accepted by conveyor, so both columns do the same work.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from conveyor.trust import AllowedSigners, load_signing_key, sign, verify

KEYS = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa-p256": ["-t", "ecdsa", "-b", "256"],
    "rsa-3072": ["-t", "rsa", "-b", "3072"],
}


def _ssh_keygen_sign(key: Path, message: bytes) -> str:
    done = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", "conveyor", "-f", str(key)], input=message, capture_output=True
    )
    done.check_returncode()
    return done.stdout.decode()


def _ssh_keygen_verify(allowed: Path, signature: str, message: bytes, folder: Path) -> None:
    sig = folder / "event.sig"
    sig.write_text(signature)
    subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "ci", "-n", "conveyor", "-s", str(sig)],
        input=message,
        capture_output=True,
        check=True,
    )


def _per_item(seconds: float, count: int) -> float:
    return seconds / count * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="signatures made and checked in process")
    parser.add_argument("--openssh", type=int, default=100, help="signatures made and checked by ssh-keygen")
    args = parser.parse_args(argv)
    messages = [f'{{"event": {i}, "release": 7, "action": "approve"}}'.encode() for i in range(args.events)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-sig-") as tmp:
        folder = Path(tmp)
        for name, options in KEYS.items():
            key_file = folder / name
            subprocess.run(["ssh-keygen", "-q", *options, "-N", "", "-C", "ci", "-f", str(key_file)], check=True)
            allowed_file = folder / f"{name}.allowed"
            allowed_file.write_text(f"ci {(folder / f'{name}.pub').read_text()}")
            allowed = AllowedSigners.load(allowed_file)
            key = load_signing_key(key_file)

            started = time.perf_counter()
            ours = [sign(m, key) for m in messages]
            our_sign = time.perf_counter() - started
            started = time.perf_counter()
            assert all(verify(m, s, allowed) == "ci" for m, s in zip(messages, ours, strict=True))
            our_verify = time.perf_counter() - started

            sample = messages[: args.openssh]
            started = time.perf_counter()
            theirs = [_ssh_keygen_sign(key_file, m) for m in sample]
            their_sign = time.perf_counter() - started
            started = time.perf_counter()
            for m, s in zip(sample, ours[: args.openssh], strict=True):
                _ssh_keygen_verify(allowed_file, s, m, folder)
            their_verify = time.perf_counter() - started
            assert all(verify(m, s, allowed) == "ci" for m, s in zip(sample, theirs, strict=True))

            rows.append((name, args.events, our_sign, our_verify, args.openssh, their_sign, their_verify))

    print(
        f"{'key':<11} {'conveyor sign ms':>17} {'verify ms':>10} {'ssh-keygen sign ms':>19} {'verify ms':>10}"
        f" {'verify ×':>9} {f'{args.events} events verified, s':>27}"
    )
    for name, count, our_sign, our_verify, sample, their_sign, their_verify in rows:
        ours_ms, theirs_ms = _per_item(our_verify, count), _per_item(their_verify, sample)
        print(
            f"{name:<11} {_per_item(our_sign, count):>17.3f} {ours_ms:>10.3f} {_per_item(their_sign, sample):>19.2f}"
            f" {theirs_ms:>10.2f} {theirs_ms / ours_ms:>9.0f} {our_verify:>27.2f}"
        )
    print(f"\nper signature; conveyor over {args.events} messages, ssh-keygen (one process each) over {args.openssh};")
    openssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    print(f"{os.cpu_count()} cores; {openssh}")


if __name__ == "__main__":
    main()
