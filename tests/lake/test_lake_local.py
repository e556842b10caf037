"""The embedded file:// lake: rooting, confinement, lineage, errors."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest

from conveyor.errors import LakeError
from conveyor.examples.census_data import census_frame, write_census_csv
from conveyor.lake import LakePathMissing, LakePathOutside, open_lake, parse_lake_url
from conveyor.lake.lineage import CHUNK


@pytest.fixture
def lakes(tmp_path: Path) -> tuple[Path, Path]:
    """A dev lake and its sibling stage lake; the dev lake holds a census file and a symlink into stage."""
    dev, stage = tmp_path / "lakes" / "dev", tmp_path / "lakes" / "stage"
    (dev / "census").mkdir(parents=True)
    stage.mkdir(parents=True)
    write_census_csv(dev / "census" / "AdultCensusIncome.csv", rows=300, seed=1)
    (stage / "eval.csv").write_text("age, hours-per-week\n40, 40\n")
    (dev / "stage-link").symlink_to(stage)
    (dev / "census" / "eval-link.csv").symlink_to(stage / "eval.csv")
    (dev / "census" / "inside-link.csv").symlink_to(dev / "census" / "AdultCensusIncome.csv")
    return dev, stage


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_relative_url_is_taken_from_project_root(tmp_path: Path, lakes: tuple[Path, Path]) -> None:
    lake = open_lake("file://lakes/dev", None, tmp_path)
    assert lake.ls() == ["census", "stage-link"]
    assert lake.url_of("census/AdultCensusIncome.csv") == f"file://{tmp_path}/lakes/dev/census/AdultCensusIncome.csv"


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_lake_url("file://~/lake", Path("/elsewhere")).root == str(tmp_path / "lake")


def test_reading_within_the_lake_records_lineage(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"))
    with lake.open("census/AdultCensusIncome.csv") as handle:
        frame = pd.read_csv(handle, skipinitialspace=True)
    assert len(frame) == 300
    assert [(r.path, r.sha256) for r in lake.reads()] == [
        ("census/AdultCensusIncome.csv", sha(dev / "census" / "AdultCensusIncome.csv"))
    ]
    line = f"census/AdultCensusIncome.csv\t{sha(dev / 'census' / 'AdultCensusIncome.csv')}\n"
    assert lake.data_digest() == "sha256:" + hashlib.sha256(line.encode()).hexdigest()


def test_symlink_inside_the_lake_is_followed(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"))
    assert lake.open("census/inside-link.csv").read(3) == b"age"
    assert lake.open("census/../census/./inside-link.csv", "r").readline().startswith("age, workclass")


@pytest.mark.parametrize(
    "path",
    [
        "../stage/eval.csv",
        "census/../../stage/eval.csv",
        "..",
        "/etc/passwd",
        "stage-link/eval.csv",
        "census/eval-link.csv",
        "stage-link",
    ],
)
def test_paths_leaving_the_lake_are_refused(lakes: tuple[Path, Path], path: str) -> None:
    dev, _stage = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"))
    for attempt in (
        lambda: lake.open(path),
        lambda: lake.ls(path),
        lambda: lake.exists(path),
        lambda: lake.fs.cat_file(path),
        lambda: lake.fs.open(path, "r"),
        lambda: lake.get(path, "/nonexistent-target"),
    ):
        with pytest.raises(LakePathOutside) as refused:
            attempt()
        assert path in str(refused.value) and str(dev) in str(refused.value)
        assert isinstance(refused.value, LakeError)
    assert lake.reads() == []


def test_url_of_another_place_is_refused_and_own_url_accepted(lakes: tuple[Path, Path]) -> None:
    dev, stage = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"))
    with pytest.raises(LakePathOutside, match="URL of another place"):
        lake.open(f"file://{stage}/eval.csv")
    with pytest.raises(LakePathOutside):
        lake.open(f"file://{dev}/../stage/eval.csv")
    assert lake.open(lake.url_of("census/AdultCensusIncome.csv")).read(3) == b"age"


def test_writes_stay_inside(lakes: tuple[Path, Path]) -> None:
    dev, stage = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"))
    with lake.open("outputs/run1/metrics.json", "wb") as handle:
        handle.write(b"{}")
    assert (dev / "outputs" / "run1" / "metrics.json").read_bytes() == b"{}"
    with pytest.raises(LakePathOutside):
        lake.open("stage-link/planted.csv", "wb")
    with pytest.raises(LakePathOutside):
        lake.fs.rm("../stage/eval.csv")
    assert not (stage / "planted.csv").exists() and (stage / "eval.csv").exists()
    assert lake.reads() == []


@pytest.mark.parametrize(
    "operation",
    [
        lambda fs, out: fs.get("census", str(out), recursive=True),
        lambda fs, out: fs.get("*", str(out), recursive=True),
        lambda fs, out: fs.cat("census", recursive=True),
        lambda fs, out: fs.cat("census/*.csv"),
        lambda fs, out: fs.copy("census", "copied", recursive=True),
    ],
)
def test_recursive_operations_do_not_follow_links_out(lakes: tuple[Path, Path], tmp_path: Path, operation) -> None:
    dev, _ = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"))
    with pytest.raises(LakePathOutside, match="symlink"):
        operation(lake.fs, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (dev / "copied").exists()


def test_digest_changes_when_one_byte_changes(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    file = dev / "census" / "AdultCensusIncome.csv"
    url = f"file://{dev}"

    def digest() -> str:
        lake = open_lake(url, None, Path("/"))
        with lake.open("census/AdultCensusIncome.csv") as handle:
            handle.read()
        return lake.data_digest()

    before = digest()
    assert digest() == before
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 1
    file.write_bytes(bytes(data))
    assert digest() != before


def test_partial_and_random_reads_hash_the_whole_file(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    big = dev / "big.bin"
    big.write_bytes(os.urandom(CHUNK * 2 + 123))
    expected = sha(big)
    for read in (
        lambda f: f.read(10),
        lambda f: (f.seek(CHUNK), f.read(100)),
        lambda f: (f.read(50), f.seek(20), f.read(100), f.seek(0, 2)),
        lambda f: None,
    ):
        lake = open_lake(f"file://{dev}", None, Path("/"))
        with lake.open("big.bin") as handle:
            read(handle)
        assert [r.sha256 for r in lake.reads()] == [expected]


def test_files_never_closed_are_hashed_on_demand(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"))
    handle = lake.open("census/AdultCensusIncome.csv")
    handle.read(5)
    assert lake.reads()[0].sha256 == sha(dev / "census" / "AdultCensusIncome.csv")
    handle.close()


def test_other_read_paths_are_logged(lakes: tuple[Path, Path], tmp_path: Path) -> None:
    dev, _ = lakes
    (dev / "a.txt").write_text("alpha")
    (dev / "b.txt").write_text("beta")
    lake = open_lake(f"file://{dev}", None, Path("/"))
    assert lake.fs.cat_file("a.txt") == b"alpha"
    assert lake.fs.read_text("b.txt") == "beta"
    [local] = lake.get("census/AdultCensusIncome.csv", tmp_path / "copy.csv")
    assert local.read_bytes() == (dev / "census" / "AdultCensusIncome.csv").read_bytes()
    assert {r.path: r.sha256 for r in lake.reads()} == {
        "a.txt": hashlib.sha256(b"alpha").hexdigest(),
        "b.txt": hashlib.sha256(b"beta").hexdigest(),
        "census/AdultCensusIncome.csv": sha(local),
    }


def test_missing_path_is_named_with_what_is_there(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"), env="dev")
    with pytest.raises(LakePathMissing) as missing:
        lake.open("census/Adult.csv")
    text = str(missing.value)
    assert "census/Adult.csv" in text and "in the dev lake" in text  # the lake's URL is often a secret
    assert "AdultCensusIncome.csv" in text
    assert "conveyor lake put FILE census/Adult.csv --env dev" in text
    assert isinstance(missing.value, FileNotFoundError) and missing.value.exit_code == 2
    with pytest.raises(LakePathMissing, match="the lake's root holds: census"):
        lake.ls("nowhere/deeper")
    assert not lake.exists("census/Adult.csv")
    unnamed = open_lake(f"file://{dev}", None, Path("/"))
    with pytest.raises(LakePathMissing, match=f"in the lake file://{dev}"):
        unnamed.open("census/Adult.csv")


def test_put_and_get_round_trip(lakes: tuple[Path, Path], tmp_path: Path) -> None:
    dev, _ = lakes
    source = tmp_path / "upload"
    (source / "part").mkdir(parents=True)
    (source / "one.csv").write_text("1")
    (source / "part" / "two.csv").write_text("2")
    lake = open_lake(f"file://{dev}", None, Path("/"))
    assert lake.put(source / "one.csv") == ["one.csv"]
    assert lake.put(source / "one.csv", "inbox/") == ["inbox/one.csv"]
    assert sorted(lake.put(source, "data")) == ["data/one.csv", "data/part/two.csv"]
    assert lake.find("data") == ["data/one.csv", "data/part/two.csv"]
    assert lake.info("data/part/two.csv")["size"] == 1
    back = lake.get("data", tmp_path / "back")
    assert sorted(p.relative_to(tmp_path / "back").as_posix() for p in back) == ["one.csv", "part/two.csv"]
    assert [r.path for r in lake.reads()] == ["data/one.csv", "data/part/two.csv"]
    with pytest.raises(LakePathOutside):
        lake.put(source / "one.csv", "../stage/one.csv")
    with pytest.raises(LakeError, match="no such local file"):
        lake.put(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("gs://bucket/x", ["gs://", "abfss://", "s3://"]),
        ("datalake", ["no scheme"]),
        ("abfss://datalake/x", ["no storage account"]),
        ("s3:///x", ["no bucket"]),
    ],
)
def test_bad_urls_are_explained(url: str, words: list[str]) -> None:
    with pytest.raises(LakeError) as bad:
        open_lake(url, None, Path("/"))
    for word in words:
        assert word in str(bad.value)


def test_parquet_column_reads_through_fs_hash_the_whole_file(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    census_frame(400, 2).to_parquet(dev / "census.parquet")
    lake = open_lake(f"file://{dev}", None, Path("/"))
    ages = pd.read_parquet("census.parquet", columns=["age"], filesystem=lake.fs)
    assert len(ages) == 400
    assert [(r.path, r.sha256) for r in lake.reads()] == [("census.parquet", sha(dev / "census.parquet"))]


def test_reads_by_url_are_recorded_on_request(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    lake = open_lake(f"file://{dev}", None, Path("/"))
    assert lake.url_of("census") == f"file://{dev}/census"
    with pytest.raises(LakePathOutside, match=r"eval-link\.csv"):
        lake.record_read("census")  # Spark would follow the link into the stage lake
    (dev / "census" / "eval-link.csv").unlink()
    assert lake.record_read("census") == ["census/AdultCensusIncome.csv", "census/inside-link.csv"]
    assert {r.sha256 for r in lake.reads()} == {sha(dev / "census" / "AdultCensusIncome.csv")}
    with pytest.raises(LakePathMissing):
        lake.record_read("census/absent.csv")


def test_compressed_files_are_hashed_as_stored(lakes: tuple[Path, Path]) -> None:
    dev, _ = lakes
    (dev / "rows.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    lake = open_lake(f"file://{dev}", None, Path("/"))
    with lake.open("rows.csv.gz", "rt", compression="infer") as handle:
        assert handle.read() == "a,b\n1,2\n"
    assert [r.sha256 for r in lake.reads()] == [sha(dev / "rows.csv.gz")]
