"""The local engine on an S3 lake (a moto server playing S3): read through the lake's fsspec filesystem, written
beside the output and moved into place, refused without --overwrite, as on a local disk."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conveyor.batch import OutputExists, ScoringFailed, score_batch
from conveyor.config import load_project
from conveyor.secrets.file import FileSecretStore

BUCKET = "scoring"


@pytest.fixture(scope="module")
def s3_environment(batch_project, tmp_path_factory):
    """An `s3` environment beside dev (dev's registry, a lake in a moto bucket), and an s3fs client to look."""
    import s3fs
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    home = tmp_path_factory.mktemp("s3-project")
    store = FileSecretStore(home / "secrets" / "s3.toml")
    values = {
        "datalake-fqdn": f"s3://{BUCKET}/lake",
        "aws-access-key-id": "AKIABATCHSCORINGTEST",
        "aws-secret-access-key": "batch-scoring-test-secret-41d7",
        "s3-endpoint-url": endpoint,
        "aws-region": "us-east-1",
    }
    for key, value in values.items():
        store.set(key, value)
    registry = (batch_project.root / ".conveyor" / "dev" / "mlflow.db").resolve()
    (home / "conveyor.toml").write_text(
        '[project]\nname = "census"\n\n[environments.s3]\n'
        f'secrets = "file://{store.path}"\nlake = "${{secret:datalake-fqdn}}"\nregistry = "sqlite:///{registry}"\n'
    )
    fs = s3fs.S3FileSystem(
        key=values["aws-access-key-id"],
        secret=values["aws-secret-access-key"],
        client_kwargs={"endpoint_url": endpoint},
    )
    fs.mkdir(BUCKET)
    fs.put(str(batch_project.lake / "people.parquet"), f"{BUCKET}/lake/people.parquet")
    fs.put(str(batch_project.lake / "people.csv"), f"{BUCKET}/lake/people.csv")
    try:
        yield load_project(home).environment("s3"), fs
    finally:
        server.stop()


def test_an_s3_lake_is_scored_like_a_local_one(s3_environment, batch_project):
    env, fs = s3_environment
    local = score_batch(batch_project.env(), "people.csv", "scores/for-s3", model="worst_regression/1", overwrite=True)
    result = score_batch(env, "people.csv", "scores/people", model="worst_regression/1")
    assert result.rows == local.rows == 1500
    assert result.input_files == local.input_files  # the same bytes, hashed while read
    assert fs.ls(f"{BUCKET}/lake/scores") == [f"{BUCKET}/lake/scores/people"]  # nothing left beside it
    with fs.open(f"{BUCKET}/lake/scores/people/part-00000.parquet", "rb") as handle:
        scored = pq.read_table(io.BytesIO(handle.read()))
    assert scored.equals(batch_project.read("scores/for-s3"))
    with pytest.raises(OutputExists):
        score_batch(env, "people.parquet", "scores/people", model="worst_regression/1")
    replaced = score_batch(env, "people.parquet", "scores/people", model="worst_regression/1", overwrite=True)
    assert replaced.output_files == ["scores/people/part-00000.parquet"]
    assert fs.ls(f"{BUCKET}/lake/scores") == [f"{BUCKET}/lake/scores/people"]


def test_a_failed_job_leaves_nothing_in_the_bucket(s3_environment, package_copy):
    env, fs = s3_environment
    broken = package_copy("s3-broken", "def init():\n    pass\ndef run(request):\n    raise RuntimeError('no')\n")
    with pytest.raises(ScoringFailed, match=r"run\(\) raised RuntimeError: no"):
        score_batch(env, "people.csv", "scores/broken", package=broken)
    assert not [p for p in fs.find(f"{BUCKET}/lake") if "broken" in p]
    assert Path(broken).is_dir()
