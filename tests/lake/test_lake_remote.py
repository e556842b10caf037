"""Object-store lakes against real local servers: s3:// on moto, az:// and abfss:// on Azurite."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from conveyor.examples.census_data import write_census_csv
from conveyor.lake import Lake, LakePathMissing, LakePathOutside, open_lake

pytestmark = pytest.mark.services

CENSUS = "census/AdultCensusIncome.csv"


@pytest.fixture(params=["s3", "az", "abfss"])
def lakes(request: pytest.FixtureRequest) -> tuple[Callable[[str], Lake], str]:
    """(open the lake named `dev` or `stage` under a fresh prefix, the secret value that must never show)."""
    prefix = uuid.uuid4().hex[:8]
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        secrets = request.getfixturevalue("s3_secrets")
        secret = secrets.values["aws-secret-access-key"]
        return (lambda name: open_lake(f"s3://{bucket}/{prefix}/{name}", secrets, Path("/"), env=name)), secret
    container = request.getfixturevalue("azure_container")
    secrets = request.getfixturevalue("azure_secrets")
    secret = secrets.values["storage-connection-string"].split("AccountKey=")[1].split(";")[0]
    if request.param == "az":
        base = f"az://{container}/{prefix}"
    else:
        base = f"abfss://{container}@devstoreaccount1.dfs.core.windows.net/{prefix}"
    return (lambda name: open_lake(f"{base}/{name}", secrets, Path("/"), env=name)), secret


@pytest.fixture(scope="module")
def census_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("census") / "AdultCensusIncome.csv"
    write_census_csv(path, rows=300, seed=3)
    return path


def test_put_ls_open_and_digest(lakes: tuple[Callable[[str], Lake], str], census_file: Path) -> None:
    open_named, _ = lakes
    dev = open_named("dev")
    assert dev.put(census_file, "census/") == [CENSUS]
    assert dev.ls() == ["census"]
    assert dev.ls("census") == [CENSUS]
    assert dev.exists(CENSUS) and not dev.exists("census/other.csv")
    assert dev.info(CENSUS)["size"] == census_file.stat().st_size
    with dev.open(CENSUS) as handle:
        frame = pd.read_csv(handle, skipinitialspace=True)
    assert len(frame) == 300
    expected = hashlib.sha256(census_file.read_bytes()).hexdigest()
    assert [(r.path, r.sha256) for r in dev.reads()] == [(CENSUS, expected)]
    line = f"{CENSUS}\t{expected}\n".encode()
    assert dev.data_digest() == "sha256:" + hashlib.sha256(line).hexdigest()
    assert dev.url_of(CENSUS).startswith(dev.url.rstrip("/") + "/")
    assert dev.url_of(CENSUS).endswith("/dev/" + CENSUS)


def test_partial_read_hashes_whole_object(lakes: tuple[Callable[[str], Lake], str], census_file: Path) -> None:
    open_named, _ = lakes
    dev = open_named("dev")
    dev.put(census_file, CENSUS)
    with dev.open(CENSUS, "r") as handle:
        assert handle.readline().startswith("age, workclass, fnlwgt")
    assert dev.reads()[0].sha256 == hashlib.sha256(census_file.read_bytes()).hexdigest()


def test_sibling_lake_is_out_of_reach(lakes: tuple[Callable[[str], Lake], str], tmp_path: Path) -> None:
    open_named, secret = lakes
    stage, dev = open_named("stage"), open_named("dev")
    (tmp_path / "eval.csv").write_text("age, hours-per-week\n40, 40\n")
    stage.put(tmp_path / "eval.csv")
    assert stage.ls() == ["eval.csv"]
    for path in ("../stage/eval.csv", "/stage/eval.csv", "x/../../stage/eval.csv", stage.url_of("eval.csv")):
        with pytest.raises(LakePathOutside) as refused:
            dev.open(path)
        assert dev.url in str(refused.value) and secret not in str(refused.value)
        with pytest.raises(LakePathOutside):
            dev.put(tmp_path / "eval.csv", path)
    assert dev.reads() == []


def test_missing_object_names_what_is_there(
    lakes: tuple[Callable[[str], Lake], str], census_file: Path, tmp_path: Path
) -> None:
    open_named, secret = lakes
    dev = open_named("dev")
    dev.put(census_file, CENSUS)
    with pytest.raises(LakePathMissing) as missing:
        dev.open("census/absent.csv")
    text = str(missing.value)
    assert "census/absent.csv" in text and "AdultCensusIncome.csv" in text
    assert "conveyor lake put FILE census/absent.csv --env dev" in text
    assert secret not in text and secret not in repr(dev) and secret not in repr(dev.fs)
    [local] = dev.get(CENSUS, tmp_path / "back.csv")
    assert local.read_bytes() == census_file.read_bytes()
