"""The image secret scan on an OCI archive, beside the floor (inflating and reading the layers, no matching), one
`in` per written form and one Python regular expression of every form, in one run.

Run: .venv/bin/python benchmarks/scan.py [--archive IMAGE.oci.tar] [--runs 3] [--values 18]

Without --archive, the newest `image.oci.tar` of a `make demo` project (/tmp/conveyor-demo-*) is scanned. The
values looked for are random ones (two thirds tokens, one third hex strings, as a project's stores hold), each in
every form a push looks for (as is, escaped, URL-encoded, base64 at the three offsets), none of which is in the
image, so every byte is read: the cost of a clean push. `warm` is the same scan again with the clean-layer record a
push keeps (layers found clean for the same values are not read again).
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

from conveyor.secrets import scan
from conveyor.secrets.encodings import written_forms


class Floor(scan._Matcher):
    """Batches every window and matches nothing: what inflating and walking the layers cost alone."""

    def match(self, batch: list[tuple[str, bytes]]) -> set[scan.SecretFinding]:
        return set()


class EachForm(scan._Matcher):
    """One `in` per form and window (CPython's two-way search), in the thread that reads."""

    def _flush(self) -> None:
        self.found |= {
            scan.SecretFinding(where, key)
            for where, window in self.batch
            for form, key in self.keys.items()
            if form in window
        }
        self.batch, self.size = [], 0


class OneExpression(scan._Matcher):
    """All the forms as one alternation of Python's `re`, searched per window in the thread that reads."""

    def _flush(self) -> None:
        ordered = sorted(self.keys, key=len, reverse=True)
        pattern = re.compile(b"|".join(re.escape(form) for form in ordered))
        self.found |= {scan.SecretFinding(w, self.keys[m.group(0)]) for w, b in self.batch for m in pattern.finditer(b)}
        self.batch, self.size = [], 0


def _newest_demo_archive() -> Path | None:
    found = sorted(Path(tempfile.gettempdir()).glob("conveyor-demo-*/*/.conveyor/builds/*/image.oci.tar"))
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _scan(matcher: scan._Matcher, archive: Path, clean: scan.CleanBlobs) -> float:
    """One push's scan: each layer hashed, skipped when `clean` holds it, else read and matched."""
    start = time.perf_counter()
    with archive.open("rb") as handle:
        findings = scan._scan_blobs(matcher, handle, str(archive), clean)
    assert not findings, findings
    return time.perf_counter() - start


def _cold(
    kind: type[scan._Matcher], archive: Path, forms: dict[str, str], keys: dict[str, str | None], runs: int
) -> float:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache, kind(forms, keys) as matcher:
            times.append(_scan(matcher, archive, scan.CleanBlobs(Path(cache), forms)))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, help="an OCI image archive (default: the newest make demo one)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--values", type=int, default=18, help="how many secret values a project's stores hold")
    args = parser.parse_args(argv)
    archive = args.archive or _newest_demo_archive()
    if archive is None or not archive.is_file():
        print("no image archive: pass --archive IMAGE.oci.tar, or run `make demo` first", file=sys.stderr)
        return 2
    tokens = args.values * 2 // 3
    values = [secrets.token_urlsafe(24) for _ in range(tokens)] + [
        secrets.token_hex(8) for _ in range(args.values - tokens)
    ]
    forms = {form: value for value in values for form in written_forms(value)}
    keys: dict[str, str | None] = {value: f"key-{i}" for i, value in enumerate(values)}
    peers: dict[str, type[scan._Matcher]] = {
        "floor: inflate, hash and read the layers, no matching": Floor,
        "one `in` per form, in the reading thread": EachForm,
        "one Python regular expression of every form": OneExpression,
        "conveyor, cold (a first push: one Aho-Corasick pass)": scan._Matcher,
    }
    rows = [(name, _cold(kind, archive, forms, keys, args.runs)) for name, kind in peers.items()]
    with tempfile.TemporaryDirectory() as cache, scan._Matcher(forms, keys) as matcher:
        clean = scan.CleanBlobs(Path(cache), forms)
        _scan(matcher, archive, clean)
        rows.append(("conveyor, warm (layers found clean before)", _scan(matcher, archive, clean)))
    size = archive.stat().st_size / 1e6
    print(f"{archive} ({size:.0f} MB), {len(values)} values in {len(forms)} forms, median of {args.runs}")
    print("| scan | seconds |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
