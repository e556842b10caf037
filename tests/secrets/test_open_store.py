"""open_store: the URL's scheme chooses the backend; errors say which schemes exist and what to install."""

from __future__ import annotations

import builtins
import importlib
import sys
from pathlib import Path

import pytest

from conveyor.errors import SecretError
from conveyor.secrets import SecretStore, open_store
from conveyor.secrets.base import BACKENDS, scheme_of
from conveyor.secrets.databricks import DatabricksSecretStore
from conveyor.secrets.file import FileSecretStore
from conveyor.secrets.vault import VaultSecretStore

ALL_SCHEMES = ["file://", "env://", "vault://", "azure-keyvault://", "databricks://"]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("file://secrets/dev.toml", FileSecretStore),
        ("FILE://secrets/dev.toml", FileSecretStore),
        ("vault://vault.example.com/secret/conveyor/dev", VaultSecretStore),
        ("databricks://conveyor-dev", DatabricksSecretStore),
    ],
)
def test_scheme_chooses_the_backend(url: str, kind: type, tmp_path: Path) -> None:
    store = open_store(url, tmp_path)
    assert isinstance(store, kind) and isinstance(store, SecretStore)
    assert store.url == url


def test_relative_file_paths_default_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("file://dev.toml")
    assert isinstance(store, FileSecretStore) and store.path == tmp_path / "dev.toml"


def test_every_backend_in_the_table_resolves_to_a_store_class() -> None:
    assert [s + "://" for s in BACKENDS] == ALL_SCHEMES
    for backend in BACKENDS.values():
        module_name, _, attr = backend.implementation.partition(":")
        class_name, method = attr.split(".")
        store_class = getattr(importlib.import_module(module_name), class_name)
        assert method == "from_url" and callable(store_class.from_url)
        assert all(callable(getattr(store_class, m)) for m in ("get", "names", "set"))


def test_unknown_scheme_lists_the_accepted_ones() -> None:
    with pytest.raises(SecretError) as caught:
        open_store("aws-secretsmanager://conveyor/dev")
    text = str(caught.value)
    assert "unknown secret store scheme 'aws-secretsmanager://'" in text
    assert all(scheme in text for scheme in ALL_SCHEMES)


def test_url_without_scheme_is_refused() -> None:
    with pytest.raises(SecretError, match="has no scheme") as caught:
        scheme_of("~/.conveyor/secrets/dev.toml")
    assert "file://" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "library", "extra"),
    [
        ("vault://vault.example.com/secret/dev", "hvac", "vault"),
        ("azure-keyvault://conveyor-dev", "azure", "azure"),
        ("databricks://conveyor-dev", "databricks", "databricks"),
    ],
)
def test_missing_client_library_says_what_to_install(
    url: str, library: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def without_library(name: str, *args, **kwargs):
        if name == library or name.startswith(library + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    module = BACKENDS[url.split("://")[0]].implementation.split(":")[0]
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setattr(builtins, "__import__", without_library)
    with pytest.raises(SecretError) as caught:
        open_store(url)
    text = str(caught.value)
    assert f"the {url.split('://')[0]}:// secret store needs a client library that is not installed" in text
    assert f"pip install 'conveyor[{extra}]'" in text
