"""`batch://` release targets: a release scores a lake dataset with the package the ledger recorded."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from conveyor.config import load_project
from conveyor.errors import CheckFailed, ConfigError
from conveyor.release.shipment import Shipment
from conveyor.release.targets import DeployContext, target_for


def deploy(batch_project, url: str, shipment: Shipment, release_id: int = 7) -> dict:
    project = load_project(batch_project.root)
    target = target_for(url)
    context = DeployContext(project.name, project.state_dir, "scores", release_id, shipment)
    return {name: target.run_step(name, context) for name in target.steps()}


def shipment_of(record) -> Shipment:
    model = record.data.get("model") or {}
    return Shipment(record.digest, None, None, record.package_dir, model.get("name"), str(model.get("version")))


def test_a_release_scores_the_dataset_with_the_recorded_package(batch_project, built):
    done = deploy(batch_project, "batch://dev/people.parquet?output=scores/release-{release}", shipment_of(built))
    assert list(done) == ["verify", "score"]
    assert done["verify"].digest == built.digest
    assert done["score"].reference == "dev lake: scores/release-v1-r7" and done["score"].engine == "local"
    scored = pq.read_table(batch_project.lake / "scores/release-v1-r7")
    assert scored.num_rows == 1500 and scored.column_names[-1] == "estimated_wages"
    again = deploy(batch_project, "batch://dev/people.parquet?output=scores/release-{release}", shipment_of(built))
    assert again["score"].reference == done["score"].reference  # a resumed deployment scores again, in place


def test_a_changed_package_is_not_shipped(batch_project, built, tmp_path):
    import shutil

    copy = tmp_path / "package"
    shutil.copytree(built.package_dir, copy)
    (copy / "model" / "weights.json").write_text('{"weights": [0, 0], "bias": 1}')
    changed = Shipment(built.digest, None, None, copy, "worst_regression", "1")
    with pytest.raises(CheckFailed, match=r"weights\.json"):
        deploy(batch_project, "batch://dev/people.parquet?output=scores/tampered", changed)
    assert not (batch_project.lake / "scores/tampered").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("batch://dev/people.parquet", "must be batch://ENV/INPUT"),
        ("batch://dev/people.parquet?output=out&engine=dask", "must be batch://ENV/INPUT"),
        ("batch://Dev/people.parquet?output=out", "must be batch://ENV/INPUT"),
    ],
)
def test_the_project_file_checks_batch_targets(tmp_path, url, message):
    (tmp_path / "conveyor.toml").write_text(
        f'[project]\nname = "x"\n\n[environments.dev]\nsecrets = "env://"\nlake = "file:///tmp"\n\n'
        f'[release.scores]\ntarget = "{url}"\n'
    )
    with pytest.raises(ConfigError, match=message):
        load_project(tmp_path)


def test_a_batch_target_is_accepted_by_the_project_file(tmp_path):
    url = "batch://prod/census/people.parquet?output=scores/census-{release}&engine=spark"
    (tmp_path / "conveyor.toml").write_text(
        f'[project]\nname = "x"\n\n[environments.prod]\nsecrets = "env://"\nlake = "file:///tmp"\n\n'
        f'[release.scores]\ntarget = "{url}"\nenv = "prod"\n'
    )
    assert load_project(tmp_path).config.release["scores"].target == url
    target = target_for(url)
    assert (target.env, target.input, target.output, target.engine) == (
        "prod",
        "census/people.parquet",
        "scores/census-{release}",
        "spark",
    )
