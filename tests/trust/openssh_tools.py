"""The real OpenSSH tools beside conveyor's signatures: `ssh-keygen -Y sign/verify/find-principals`."""

from __future__ import annotations

import subprocess
from pathlib import Path


def ssh_keygen_sign(key: Path, message: bytes, namespace: str = "conveyor", *extra: str) -> str:
    done = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", str(key), *extra],
        input=message,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode()


def ssh_keygen_verify(
    allowed: Path, principal: str, signature: str, message: bytes, namespace: str = "conveyor", *extra: str
) -> subprocess.CompletedProcess[bytes]:
    """`ssh-keygen -Y verify`: returncode 0 when OpenSSH accepts the signature for `principal`."""
    sig = allowed.parent / f"sig-{abs(hash(signature))}.sig"
    sig.write_text(signature)
    return subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", namespace, "-s", str(sig), *extra],
        input=message,
        capture_output=True,
        check=False,
    )


def ssh_keygen_find_principals(allowed: Path, signature: str) -> str:
    sig = allowed.parent / f"find-{abs(hash(signature))}.sig"
    sig.write_text(signature)
    done = subprocess.run(
        ["ssh-keygen", "-Y", "find-principals", "-f", str(allowed), "-s", str(sig)],
        capture_output=True,
        check=False,
    )
    return done.stdout.decode().strip()


KEY_TYPES = {
    "ed": ["-t", "ed25519"],
    "p256": ["-t", "ecdsa", "-b", "256"],
    "p384": ["-t", "ecdsa", "-b", "384"],
    "p521": ["-t", "ecdsa", "-b", "521"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}
