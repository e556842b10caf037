"""The image secret scan on an OCI archive, beside the floor (inflating and reading the layers, no matching) and
one regular expression of every form (the usual way in Python), in one run.

Run: .venv/bin/python benchmarks/scan.py [--archive IMAGE.oci.tar] [--runs 3]

Without --archive, the newest `image.oci.tar` of a `make demo` project (/tmp/conveyor-demo-*) is scanned. The
values looked for are 18 random ones (12 tokens and 6 hex strings, as a project's stores hold), none of which is
in the image, so every byte is read: the cost of a clean push. `warm` is the same scan again with the clean-layer
record a push keeps (layers found clean for the same values are not read again).
"""

from __future__ import annotations

import argparse
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from conveyor.secrets import scan


class Floor(scan._Matcher):
    """Reads every chunk and matches nothing: what inflating and walking the layers cost alone."""

    def keys_in(self, handle: IO[bytes]) -> set[str]:
        while handle.read(scan.CHUNK):
            pass
        return set()


class OneExpression(scan._Matcher):
    """All the forms as one alternation, searched with `re.finditer` per chunk."""

    def __init__(self, forms: dict[str, str], keys: dict[str, str | None]) -> None:
        super().__init__(forms, keys)
        ordered = sorted(self.keys, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(form) for form in ordered))

    def keys_in(self, handle: IO[bytes]) -> set[str]:
        found: set[str] = set()
        tail = b""
        while chunk := handle.read(scan.CHUNK):
            window = tail + chunk
            found |= {self.keys[m.group(0)] for m in self.pattern.finditer(window)}
            tail = window[-(self.longest - 1) :]
        return found


def _newest_demo_archive() -> Path | None:
    found = sorted(Path(tempfile.gettempdir()).glob("conveyor-demo-*/*/.conveyor/builds/*/image.oci.tar"))
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _scan(matcher: scan._Matcher, archive: Path, clean: scan.CleanBlobs) -> float:
    """One push's scan: each layer hashed, skipped when `clean` holds it, else read and matched."""
    start = time.perf_counter()
    with archive.open("rb") as handle:
        findings = list(scan._scan_blobs(matcher, handle, str(archive), clean))
    assert not findings, findings
    return time.perf_counter() - start


def _cold(matcher: scan._Matcher, archive: Path, forms: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            times.append(_scan(matcher, archive, scan.CleanBlobs(Path(cache), forms)))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, help="an OCI image archive (default: the newest make demo one)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    archive = args.archive or _newest_demo_archive()
    if archive is None or not archive.is_file():
        print("no image archive: pass --archive IMAGE.oci.tar, or run `make demo` first", file=sys.stderr)
        return 2
    values = [secrets.token_urlsafe(24) for _ in range(12)] + [secrets.token_hex(8) for _ in range(6)]
    forms = {value: value for value in values}
    keys: dict[str, str | None] = {value: f"key-{i}" for i, value in enumerate(values)}
    peers = {
        "floor: inflate, hash and read the layers, no matching": Floor,
        "one regular expression of every value": OneExpression,
        "conveyor, cold (a first push)": scan._Matcher,
    }
    rows = [(name, _cold(kind(forms, keys), archive, forms, args.runs)) for name, kind in peers.items()]
    with tempfile.TemporaryDirectory() as cache:
        clean = scan.CleanBlobs(Path(cache), forms)
        matcher = scan._Matcher(forms, keys)
        _scan(matcher, archive, clean)
        rows.append(("conveyor, warm (layers found clean before)", _scan(matcher, archive, clean)))
    print(f"{archive} ({archive.stat().st_size / 1e6:.0f} MB), 18 values, median of {args.runs}")
    print("| scan | seconds |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
