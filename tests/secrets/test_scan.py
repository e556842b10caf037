"""Publishing scans what it publishes for every known value, in files, folders and archives inside archives."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from conveyor.errors import CheckFailed
from conveyor.secrets import open_store
from conveyor.secrets.redaction import register_secret
from conveyor.secrets.scan import refuse_published, scan_paths

VALUE = "gH7-publish-me-not-22"


def tar_bytes(files: dict[str, bytes], compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    return gzip.compress(raw) if compress else raw


def test_findings_name_the_file_and_key_inside_nested_archives(tmp_path: Path) -> None:
    register_secret(VALUE, "db-password")
    results = tmp_path / "results"
    (results / "htmlcov").mkdir(parents=True)
    (results / "junit.xml").write_text("<testsuite/>")
    (results / "htmlcov" / "index.html").write_text(f"<p>{json.dumps({'k': VALUE})}</p>")
    layer = tar_bytes({"app/model/config.json": base64.b64encode(b"user:" + VALUE.encode())}, compress=True)
    (tmp_path / "image.oci.tar").write_bytes(tar_bytes({"blobs/sha256/abc": layer, "index.json": b"{}"}))
    found = scan_paths([results, tmp_path / "image.oci.tar"])
    assert [(f.where.replace(str(tmp_path), ""), f.key) for f in found] == [
        ("/image.oci.tar!blobs/sha256/abc!app/model/config.json", "db-password"),
        ("/results/htmlcov/index.html", "db-password"),
    ]


def test_refuse_published_learns_the_stores_values_and_never_shows_them(tmp_path: Path) -> None:
    store_file = tmp_path / "stage.toml"
    store_file.write_text(f'db-password = "{VALUE}"\n')
    store_file.chmod(0o600)
    (tmp_path / "build.json").write_text(json.dumps({"note": f"dsn=postgresql://svc:{VALUE}@db"}))
    (tmp_path / "clean.json").write_text("{}")
    refuse_published([tmp_path / "clean.json"], "clean", [open_store(store_file.as_uri())])
    with pytest.raises(CheckFailed) as caught:
        refuse_published([tmp_path / "build.json"], "the build record", [open_store(store_file.as_uri())])
    text = str(caught.value)
    assert "build.json: the value of db-password" in text and VALUE not in text
    assert caught.value.exit_code == 1


def test_a_value_split_across_read_chunks_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.secrets import scan

    monkeypatch.setattr(scan, "CHUNK", 7)
    register_secret(VALUE, "db-password")
    (tmp_path / "big.bin").write_bytes(b"x" * 20 + VALUE.encode() + b"y" * 20)
    assert [f.key for f in scan_paths([tmp_path])] == ["db-password"]
