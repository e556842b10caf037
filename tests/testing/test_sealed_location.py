"""Where the sealed set may live: never in the project folder or a lake, which training scripts see."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import load_project
from conveyor.errors import ConfigError
from conveyor.testing.sealed import check_outside_lakes, sealed_copy


@pytest.mark.parametrize("where", ["project", "dev lake", "stage lake"])
def test_a_sealed_set_training_could_see_is_refused(
    census_project: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = load_project(census_project)
    folder = {
        "project": census_project / "data",
        "dev lake": Path(project.environment("dev").lake_url.removeprefix("file://")) / "hidden",
        "stage lake": Path(project.environment("stage").lake_url.removeprefix("file://")),
    }[where]
    monkeypatch.setenv("CONVEYOR_SECRETS_GATES", "env://CONVEYOR_GATES_")
    monkeypatch.setenv("CONVEYOR_GATES_EVAL_DATA_URL", (folder / "eval.csv").as_uri())
    with pytest.raises(ConfigError, match="inside the"), sealed_copy(load_project(census_project)):
        pass


def test_the_scaffolded_sealed_set_is_outside_every_lake_and_copied_privately(census_project: Path) -> None:
    project = load_project(census_project)
    url = project.gates.eval_data_url()
    assert check_outside_lakes(project, url) == ["dev", "stage", "prod"]
    with sealed_copy(project) as copy:
        assert copy.read_bytes() == Path(url.removeprefix("file://")).read_bytes()
        assert oct(copy.parent.stat().st_mode & 0o777) == "0o700"
    assert not copy.exists()


def test_a_sealed_set_url_without_scheme_names_the_setting_not_the_masked_value(
    census_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_SECRETS_GATES", "env://CONVEYOR_GATES_")
    monkeypatch.setenv("CONVEYOR_GATES_EVAL_DATA_URL", "/srv/sealed/eval.csv")
    with pytest.raises(ConfigError) as info, sealed_copy(load_project(census_project)):
        pass
    message = str(info.value)
    assert "gates.eval_data = '${secret:eval-data-url}'" in message and "no scheme" in message
