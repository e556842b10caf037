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


def _oci(blobs: dict[str, bytes]) -> bytes:
    return tar_bytes({**{f"blobs/sha256/{name}": data for name, data in blobs.items()}, "index.json": b"{}"})


def test_clean_layers_are_remembered_by_the_digest_of_their_bytes_and_the_values(tmp_path: Path) -> None:
    import hashlib

    register_secret(VALUE, "db-password")
    cache = tmp_path / "cache"
    clean = tar_bytes({"app/a.txt": b"nothing to see"}, compress=True)
    digest = hashlib.sha256(clean).hexdigest()
    (tmp_path / "one.tar").write_bytes(_oci({digest: clean}))
    assert scan_paths([tmp_path / "one.tar"], clean_cache=cache) == []
    entries = {p.name for p in cache.iterdir()} - {"key"}
    assert len(entries) == 1 and (cache / "key").stat().st_mode & 0o777 == 0o600
    assert not any(VALUE in name or hashlib.sha256(VALUE.encode()).hexdigest() in name for name in entries)

    # the same name over other bytes is no clean layer: scanned, and the value found
    dirty = tar_bytes({"app/a.txt": VALUE.encode()}, compress=True)
    (tmp_path / "two.tar").write_bytes(_oci({digest: dirty}))
    assert [f.key for f in scan_paths([tmp_path / "two.tar"], clean_cache=cache)] == ["db-password"]
    # a layer named by its own digest that holds the value is found every time, never remembered
    (tmp_path / "three.tar").write_bytes(_oci({hashlib.sha256(dirty).hexdigest(): dirty}))
    for _ in range(2):
        assert [f.key for f in scan_paths([tmp_path / "three.tar"], clean_cache=cache)] == ["db-password"]
    assert {p.name for p in cache.iterdir()} - {"key"} == entries

    # a scan for other values does not take the earlier verdict
    register_secret("another-value-0042", "api-token")
    assert scan_paths([tmp_path / "one.tar"], clean_cache=cache) == []
    assert len({p.name for p in cache.iterdir()} - {"key"}) == 2


def test_a_layer_cut_short_is_refused_not_skipped(tmp_path: Path) -> None:
    from conveyor.secrets.scan import Unscannable

    register_secret(VALUE, "db-password")
    layer = tar_bytes({"app/big.bin": bytes(range(256)) * 4096}, compress=True)
    (tmp_path / "image.oci.tar").write_bytes(_oci({"0" * 64: layer[: len(layer) // 2]}))
    for cache in (None, tmp_path / "cache"):
        with pytest.raises(Unscannable, match=r"cannot scan .*image\.oci\.tar!blobs/sha256/0+"):
            scan_paths([tmp_path / "image.oci.tar"], clean_cache=cache)


def test_an_env_store_without_a_prefix_lists_no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.secrets.scan import learn_values

    monkeypatch.setenv("SHORT", "1")  # a weak value, were it taken for a secret
    (tmp_path / "notes.txt").write_text(f"HOME is {Path.home()}")
    learn_values([open_store("env://", tmp_path)])
    refuse_published([tmp_path / "notes.txt"], "notes", [open_store("env://", tmp_path)])  # HOME is no secret


def test_every_member_of_a_gzip_stream_is_read_and_checked(tmp_path: Path) -> None:
    """`cat a.gz b.gz` is one gzip stream: a value in its second member is found; zero padding after the last
    member is allowed, as gzip allows it; a member whose CRC-32 does not match, or bytes after the end that are no
    gzip member, are refused rather than read past."""
    from conveyor.secrets.scan import Unscannable

    register_secret(VALUE, "db-password")
    first = gzip.compress(b"nothing here " * 1000)
    second = gzip.compress(tar_bytes({"etc/app.conf": f"password={VALUE}\n".encode()}))
    (tmp_path / "two.gz").write_bytes(first + second + b"\0" * 700)
    assert [str(f) for f in scan_paths([tmp_path / "two.gz"])] == [f"{tmp_path / 'two.gz'}: the value of db-password"]

    crc_broken = bytearray(second)
    crc_broken[-8] ^= 0xFF
    (tmp_path / "crc.gz").write_bytes(first + bytes(crc_broken))
    (tmp_path / "junk.gz").write_bytes(first + b"not a gzip member")
    for name in ("crc.gz", "junk.gz"):
        with pytest.raises(Unscannable, match=rf"cannot scan .*{name}"):
            scan_paths([tmp_path / name])


def test_each_finding_in_a_batch_of_small_files_names_its_own_file_and_key(tmp_path: Path) -> None:
    """Windows of many files are matched together: each hit is traced to its file and key, bytes are bytes (a
    non-ASCII value is found as its UTF-8 bytes, a regex metacharacter in a value is a literal)."""
    register_secret("pässwörd-été-2026", "api-key")
    register_secret("a.b*c+d?(e)[f]", "signing-key")
    files = {f"app/lib/m{i}.py": b"x = %d\n" % i for i in range(400)}
    files["app/lib/m17.py"] = "token = 'pässwörd-été-2026'\n".encode()
    files["app/lib/m333.py"] = b"pattern = r'a.b*c+d?(e)[f]'\n"
    files["app/lib/m90.py"] = b"no aXbbbcd(e)f here, nor p\xe4ssw\xf6rd-\xe9t\xe9-2026 in Latin-1\n"
    (tmp_path / "layer.tar.gz").write_bytes(tar_bytes(files, compress=True))
    assert [(f.where.split("!")[-1], f.key) for f in scan_paths([tmp_path])] == [
        ("app/lib/m17.py", "api-key"),
        ("app/lib/m333.py", "signing-key"),
    ]


def test_a_value_inside_another_value_is_found_with_it(tmp_path: Path) -> None:
    """All the forms are matched in one pass: where one value holds another (or their forms overlap), every value
    written there is named, not only the first the pass reaches."""
    register_secret("outer-s3cret-inner-token", "outer-key")
    register_secret("s3cret-inner", "inner-key")
    register_secret("inner-token-and-more", "later-key")
    (tmp_path / "config.txt").write_bytes(b"a = outer-s3cret-inner-token-and-more\nb = s3cret-inn\n")
    (tmp_path / "other.txt").write_bytes(b"s3cret-inner")
    assert [(Path(f.where).name, f.key) for f in scan_paths([tmp_path])] == [
        ("config.txt", "inner-key"),
        ("config.txt", "later-key"),
        ("config.txt", "outer-key"),
        ("other.txt", "inner-key"),
    ]
