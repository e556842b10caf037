"""Plug-ins: a distribution registers targets, computes and secret stores by entry point, and conveyor uses them
as it uses its own; a built-in wins a name clash and the plug-in that lost is named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from plugin_install import install

from conveyor.compute import compute_for
from conveyor.compute.engines import compute_named
from conveyor.config import COMPUTES, TARGETS, load_project
from conveyor.config.computes import compute_of
from conveyor.errors import ConfigError
from conveyor.plugins import Entry, Table, resolve
from conveyor.release.shipment import Shipment
from conveyor.release.targets import DeployContext, target_entry, target_for
from conveyor.secrets import BACKENDS, SecretBackend, open_store
from conveyor.secrets.file import FileSecretStore

EXAMPLE = Path(__file__).parent / "example_plugins"
PROJECT = """
[project]
name = "census"

[environments.dev]
secrets = "memory://dev"
lake = "file://lake"
compute = "inline"

[release.qa]
target = "folder://{folder}"
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example distribution, installed into a folder on sys.path for this test only."""
    site = tmp_path / "site"
    install(EXAMPLE, site)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_release_target_from_a_distribution_is_found_by_its_scheme(installed: Path, tmp_path: Path) -> None:
    out = tmp_path / "releases"
    out.mkdir()
    (tmp_path / "conveyor.toml").write_text(PROJECT.format(folder=out))
    project = load_project(tmp_path)
    url = project.config.release["qa"].target
    assert target_entry(url).steps == ("write",)
    target = target_for(url)
    shipment = Shipment("sha256:" + "ab" * 32, None, None, None, "census", "3")
    context = DeployContext(project.name, project.state_dir, "qa", 12, shipment)
    done = {name: target.run_step(name, context) for name in target.steps()}
    assert json.loads((out / "qa.json").read_text()) == {"release": 12, "package": shipment.package_digest}
    assert done["write"].reference == str(out / "qa.json")


def test_a_compute_and_a_secret_store_from_a_distribution_are_used(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text(PROJECT.format(folder=tmp_path))
    environment = load_project(tmp_path).environment("dev")
    assert type(compute_for(environment)).__name__ == "InlineCompute"
    assert not compute_of("inline").spark and not compute_of("inline").network
    store = open_store("memory://dev")
    store.set("datalake-fqdn", "lake.example.internal")
    assert environment.secret("datalake-fqdn") == "lake.example.internal"


def test_without_the_distribution_its_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text(PROJECT.format(folder=tmp_path))
    with pytest.raises(ConfigError, match="must be one of: local, spark"):
        load_project(tmp_path)
    with pytest.raises(ConfigError, match="must be oci://"):
        target_for(f"folder://{tmp_path}")
    assert "folder" not in TARGETS and "inline" not in [entry.name for entry in COMPUTES.values()]
    assert "memory" not in BACKENDS


def test_a_builtin_wins_a_clash_and_the_plugin_that_lost_is_named(
    installed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="conveyor.plugins"):
        assert TARGETS["oci"].implementation == "conveyor.release.targets.oci:OciTarget"
        assert "folder" in TARGETS
    assert caplog.messages == [
        "conveyor: ignoring plug-in oci = 'conveyor_example_plugins:CLASHING_TARGET' (entry point conveyor.targets "
        "of conveyor-example-plugins): conveyor's built-in 'oci' comes first"
    ]


def write_distribution(folder: Path, group: str, name: str, value: str, module: str) -> Path:
    """A one-module distribution declaring one entry point (`value` is `MODULE:ATTRIBUTE`; the module's name is
    new to each test, so none is found already imported)."""
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "broken-plugin"\nversion = "1.0"\n\n[project.entry-points."{group}"]\n{name} = "{value}"\n'
    )
    (folder / f"{value.partition(':')[0]}.py").write_text(module)
    return folder


def test_a_plugin_that_is_no_entry_is_refused_naming_its_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_distribution(tmp_path / "src", "conveyor.targets", "ftp", "no_entry:TARGET", "TARGET = 1\n")
    install(source, tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConfigError) as info:
        TARGETS.get("ftp")
    assert "plug-in ftp = 'no_entry:TARGET' (entry point conveyor.targets of broken-plugin)" in str(info.value)
    assert "not a TargetKind named 'ftp'" in str(info.value)


def test_a_broken_backend_module_is_not_blamed_on_a_client_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = "from conveyor.secrets import SecretBackend\n" + (
        'STORE = SecretBackend("broken", "conveyor.secrets.no_such_backend:Store.from_url", "", form="broken://X",'
        ' extra="vault")\n'
    )
    source = write_distribution(tmp_path / "src", "conveyor.secrets", "broken", "broken_store:STORE", entry)
    install(source, tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert isinstance(BACKENDS["broken"], SecretBackend)
    with pytest.raises(ModuleNotFoundError, match="no_such_backend"):
        open_store("broken://x")


def test_a_reference_is_module_colon_attribute() -> None:
    assert resolve("conveyor.secrets.file:FileSecretStore.from_url") == FileSecretStore.from_url
    with pytest.raises(ValueError, match="is not a `package"):
        resolve("conveyor.secrets.file.FileSecretStore")
    table = Table(Entry, [Entry("a", "conveyor.errors:ConfigError", "one")])
    assert list(table) == ["a"] and len(table) == 1 and table["a"].load() is ConfigError


def test_a_compute_whose_library_is_missing_names_its_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = "from conveyor.config.computes import ComputeEntry\n" + (
        'COMPUTE = ComputeEntry("needy", "needy_missing_library:Engine", "", form="needy", extra="spark")\n'
    )
    source = write_distribution(tmp_path / "src", "conveyor.computes", "needy", "needy_compute:COMPUTE", entry)
    install(source, tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConfigError) as info:
        compute_named("needy")
    assert "compute = 'needy' needs a library that is not installed (needy_missing_library)" in str(info.value)
    assert "pip install 'conveyor[spark]'" in str(info.value)
