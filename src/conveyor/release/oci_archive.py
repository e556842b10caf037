"""Checking an OCI image archive (`image.oci.tar`) byte for byte against the digest the tests ran in."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from conveyor.errors import CheckFailed

CHUNK = 1 << 20


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _sha256(archive: tarfile.TarFile, name: str) -> tuple[str, bytes | None, int]:
    member = archive.getmember(name)
    handle = archive.extractfile(member)
    if handle is None:
        raise KeyError(name)
    digest = hashlib.sha256()
    kept = bytearray() if member.size <= 4 << 20 else None
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        if kept is not None:
            kept.extend(chunk)
    return "sha256:" + digest.hexdigest(), bytes(kept) if kept is not None else None, member.size


def verify_oci_archive(path: Path, expected: str) -> None:
    """The archive holds the manifest `expected`, and every blob it names has exactly its digest.

    Raises CheckFailed naming the first blob that differs or is missing.
    """
    if not path.is_file():
        raise CheckFailed(f"image archive {path} is missing", hint="Rebuild with `conveyor build`.")
    try:
        with tarfile.open(path) as archive:
            names = set(archive.getnames())
            index = json.loads(archive.extractfile("index.json").read())  # type: ignore[union-attr]
            listed = [m.get("digest") for m in index.get("manifests", [])]
            if expected not in listed:
                raise CheckFailed(
                    f"image archive {path} does not hold the tested image {expected}",
                    hint=f"It holds {', '.join(map(str, listed)) or 'no image'}; the archive was changed or replaced.",
                )
            pending = [expected]
            manifest_bytes: bytes | None = None
            while pending:
                digest = pending.pop()
                name = _blob_name(digest)
                if name not in names:
                    raise CheckFailed(f"image archive {path} lacks blob {digest}", hint="The archive was changed.")
                actual, content, _size = _sha256(archive, name)
                if actual != digest:
                    raise CheckFailed(
                        f"image archive {path}: blob {digest} has changed (its bytes hash to {actual})",
                        hint="The image is not the one that was tested; refusing to ship it.",
                    )
                if digest == expected:
                    manifest_bytes = content
                    manifest = json.loads(manifest_bytes or b"{}")
                    pending.extend(
                        d["digest"] for d in [manifest.get("config", {}), *manifest.get("layers", [])] if "digest" in d
                    )
    except (tarfile.TarError, KeyError, json.JSONDecodeError, AttributeError) as exc:
        raise CheckFailed(f"image archive {path} is not a readable OCI archive: {exc}") from None
