"""Quality gates on the sealed evaluation set, inside the build's image: rules, the champion, a broken model."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest

from conveyor.cli.main import main
from conveyor.config import load_project
from conveyor.errors import SecretError
from conveyor.package import build
from conveyor.package.engine import find_engine
from conveyor.registry import ModelRegistry
from conveyor.testing import check_rule, run_gates

pytestmark = [pytest.mark.slow, pytest.mark.container]


def test_rules():
    assert check_rule("r2", ">= 0.0", 0.1, None).passed
    assert not check_rule("r2", ">= 0.0", -0.1, None).passed
    result = check_rule("mae", "<= 1.1 * champion", 105.0, 100.0)
    assert result.passed and result.threshold == pytest.approx(110.0)
    assert not check_rule("mae", "<= 1.1 * champion", 111.0, 100.0).passed
    none = check_rule("mae", "<= 1.1 * champion", 1e9, None)
    assert none.passed and none.note == "no champion"
    assert not check_rule("mae", "<= 5", None, None).passed


def register_broken_version(project_root: Path, good_package: Path) -> str:
    """Register a version whose regression weights are scaled by 1000 (a model that predicts nonsense)."""
    import mlflow

    project = load_project(project_root)
    environment = project.environment("dev")
    registry = ModelRegistry(environment)
    files = good_package.parent.parent / "broken-model"
    shutil.rmtree(files, ignore_errors=True)
    shutil.copytree(good_package / "model", files)
    model = pickle.loads((files / "model.pkl").read_bytes())
    model.coef_ = model.coef_ * 1000
    (files / "model.pkl").write_bytes(pickle.dumps(model))
    folded = files / "weights.json"
    if folded.exists():  # the scoring code reads the folded weights when they are there
        data = json.loads(folded.read_text())
        data["weights"] = [w * 1000 for w in data["weights"]]
        folded.write_text(json.dumps(data))
    mlflow.set_tracking_uri(registry.uri)
    with mlflow.start_run(experiment_id=registry.experiment_id()):
        uri = registry.log_pyfunc(files, good_package / "score.py", [good_package / "inference"], ["scikit-learn"])
    return registry.register(uri, "worst_regression", {"state": "dev"}).version


@pytest.fixture(scope="module")
def good_build(image_build):
    return image_build


def test_gates_pass_without_a_champion(good_build, census, capsys):
    assert main(["gate", good_build.short, "--project", str(census)]) == 0
    out = capsys.readouterr().out
    assert "no champion" in out and "r2" in out and "pass" in out
    gates = json.loads(good_build.path.read_text())["gates"]
    assert gates["ok"] and {r["metric"] for r in gates["results"]} == {"r2", "mae"}


def test_broken_model_fails_a_gate_with_exit_1(good_build, census, capsys):
    version = register_broken_version(census, good_build.package_dir)
    project = load_project(census)
    broken = build(project, project.environment("dev"), model_spec=f"worst_regression/{version}", engine="podman")
    assert broken.digest != good_build.digest
    capsys.readouterr()
    try:
        assert main(["gate", broken.short, "--project", str(census)]) == 1
    finally:
        find_engine("podman").remove_image(broken.image.reference)
    captured = capsys.readouterr()
    assert "FAIL" in captured.out and "quality gates failed" in captured.err
    gates = json.loads(broken.path.read_text())["gates"]
    assert not gates["ok"] and not next(r for r in gates["results"] if r["metric"] == "r2")["passed"]


def test_champion_rule_compares_with_prod(good_build, census):
    assert main(["train", "--env", "prod", "--project", str(census)]) == 0
    project = load_project(census)
    prod = ModelRegistry(project.environment("prod"))
    champion = prod.resolve("worst_regression")
    prod.set_alias("worst_regression", "prod", champion.version)
    report = run_gates(good_build)
    mae = next(r for r in report.results if r.metric == "mae")
    assert report.champion.startswith(f"worst_regression/{champion.version}")
    assert mae.champion is not None and mae.threshold == pytest.approx(1.1 * mae.champion)
    assert mae.passed == (mae.value <= mae.threshold)


def test_no_environment_store_names_the_sealed_set(census):
    project = load_project(census)
    for name in project.config.environments:
        with pytest.raises(SecretError):
            project.environment(name).resolve(project.config.gates.eval_data, "gates.eval_data")
    assert project.gates.eval_data_url().startswith("file://")
