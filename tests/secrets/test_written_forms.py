"""Secrets are masked in every form they are written in, and values too weak to mask are refused, not skipped."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from conveyor.errors import SecretError
from conveyor.secrets import open_store
from conveyor.secrets.boundaries import mask_fields, mask_json, mask_report_files
from conveyor.secrets.redaction import WeakSecretError, redact, register_secret

PASSWORD = "pA55:w0rd/&é\"x'y"
PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDx1n2q8f0c7Jk0Z3yq3Fh9tQ0k8l3oV0m6i8y0q0b2WQAAAJgQp8pJEKfK\n"
    "SQAAAAtzc2gtZWQyNTUxOQAAACDx1n2q8f0c7Jk0Z3yq3Fh9tQ0k8l3oV0m6i8y0q0b2WQ\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def test_a_multi_line_secret_is_masked_whole_and_line_by_line() -> None:
    register_secret(PEM)
    assert redact(f"key:\n{PEM}done") == "key:\n***done"
    for line in PEM.splitlines():
        assert redact(f"printed: {line}") == "printed: ***"
    assert "QyNTUxOQAAACDx1n2q8f0c7Jk0Z3yq" not in redact(PEM.replace("\n", "\r\n"))


@pytest.mark.parametrize(
    "written",
    [
        repr(PASSWORD),
        repr(PASSWORD.encode()),
        json.dumps(PASSWORD),
        json.dumps(PASSWORD, ensure_ascii=False),
        json.dumps({"dsn": f"postgresql://svc:{PASSWORD}@db"}),
        quote(PASSWORD, safe=""),
        quote_plus(PASSWORD),
        "&lt;" + PASSWORD.replace("&", "&amp;").replace('"', "&quot;") + "&gt;",
    ],
)
def test_escaped_and_encoded_forms_are_masked(written: str) -> None:
    register_secret(PASSWORD)
    masked = redact(written)
    assert "***" in masked
    assert "w0rd" not in masked


def test_base64_at_any_offset_inside_a_longer_blob_is_masked() -> None:
    register_secret(PASSWORD)
    for prefix in (b"", b"u", b"us", b"user:"):
        blob = base64.b64encode(prefix + PASSWORD.encode() + b"!tail").decode()
        masked = redact(f"Authorization: Basic {blob}")
        assert "***" in masked, prefix
        core = base64.b64encode(PASSWORD.encode()).decode()[4:12]
        assert core not in masked or not prefix


def test_a_pem_inside_a_json_document_and_its_base64_are_masked() -> None:
    register_secret(PEM)
    document = json.dumps({"key": PEM})
    assert "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUA" not in redact(document)
    encoded = base64.b64encode(PEM.encode()).decode()
    assert redact(encoded).count("***") >= 1 and encoded[8:40] not in redact(encoded)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("abc", "3 characters"),
        ("true", "4 characters"),
        ("name", "4 characters"),
        ("password", "common word"),
        ("TRUE    ", "common word"),
        ("12345678901", "number"),
        ("aaaaaaaaaaaa", "fewer than 3"),
    ],
)
def test_a_value_too_weak_to_mask_is_refused_naming_the_key(tmp_path: Path, value: str, why: str) -> None:
    store_file = tmp_path / "dev.toml"
    store_file.write_text(f"sp-app-id = {json.dumps('5b1f3e0e-9a0c-4f4e')}\nweak-one = {json.dumps(value)}\n")
    store_file.chmod(0o600)
    store = open_store("file://dev.toml", tmp_path)
    assert store.get("sp-app-id") == "5b1f3e0e-9a0c-4f4e"
    with pytest.raises(WeakSecretError) as caught:
        store.get("weak-one")  # never handed out, so never left unmasked
    text = str(caught.value)
    assert "'weak-one'" in text and why in text and "conveyor secrets set weak-one" in text
    assert value.strip() not in text.replace("weak-one", "") or value.strip() in ("true", "name")


def test_public_keys_keep_short_values_visible(tmp_path: Path) -> None:
    store_file = tmp_path / "dev.toml"
    store_file.write_text('alg-state = "dev"\ncreated-by = "bob"\nsp-app-id = "5b1f3e0e-9a0c-4f4e"\n')
    store_file.chmod(0o600)
    store = open_store("file://dev.toml", tmp_path, public_keys=frozenset({"alg-state", "created-by"}))
    assert store.get("alg-state") == "dev" and store.get("created-by") == "bob"
    assert redact("state dev by bob") == "state dev by bob"


def test_env_store_refuses_a_weak_value_as_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_QA_SP_APP_ID", "5b1f3e0e-9a0c-4f4e")
    monkeypatch.setenv("CONVEYOR_QA_SP_PASSWORD", "x1")
    store = open_store("env://CONVEYOR_QA_")
    assert store.get("sp-app-id") == "5b1f3e0e-9a0c-4f4e"
    with pytest.raises(WeakSecretError, match=r"'sp-password'.*2 characters"):
        store.get("sp-password")


def test_reading_a_whole_store_for_masking_refuses_a_weak_value(tmp_path: Path) -> None:
    from conveyor.secrets.scan import learn_values

    store_file = tmp_path / "dev.toml"
    store_file.write_text('alg-state = "dev"\nsp-app-id = "5b1f3e0e-9a0c-4f4e"\nstale-pin = "4711"\n')
    store_file.chmod(0o600)
    store = open_store("file://dev.toml", tmp_path, public_keys=frozenset({"alg-state"}))
    with pytest.raises(WeakSecretError, match="'stale-pin'"):
        learn_values([store])


def test_setting_a_weak_value_is_refused_before_it_is_written(tmp_path: Path) -> None:
    store = open_store("file://dev.toml", tmp_path)
    with pytest.raises(SecretError, match="'db-password'"):
        store.set("db-password", "hunter")
    assert not (tmp_path / "dev.toml").exists()


def test_json_documents_stay_valid_json_with_the_same_shape() -> None:
    register_secret("name-of-the-svc-account")
    document = {"name-of-the-svc-account": True, "list": ["a", "name-of-the-svc-account", 3, None], "n": 1.5}
    masked = mask_json(document)
    assert masked == {"***": True, "list": ["a", "***", 3, None], "n": 1.5}
    json.loads(json.dumps(masked))


def test_run_fields_mask_names_and_values_and_keep_both_names_apart() -> None:
    register_secret("db-host-secret.internal")
    register_secret("pw-0f9e8d7c6b5a")
    fields = {
        "dsn": "postgresql://svc:pw-0f9e8d7c6b5a@db-host-secret.internal/app",
        "loss_db-host-secret.internal": 0.5,
        "loss_pw-0f9e8d7c6b5a": 0.7,
    }
    assert mask_fields(fields) == {"dsn": "postgresql://svc:***@***/app", "loss_MASKED": 0.5, "loss_MASKED-2": 0.7}


def test_report_files_are_rewritten_masked_with_xml_escaping(tmp_path: Path) -> None:
    register_secret(PASSWORD)
    junit = tmp_path / "junit.xml"
    escaped = PASSWORD.replace("&", "&amp;").replace('"', "&quot;").replace("'", "&apos;")
    junit.write_text(
        f'<testsuite><testcase name="t"><failure message="login {escaped} failed"/></testcase></testsuite>'
    )
    html = tmp_path / "htmlcov" / "index.html"
    html.parent.mkdir()
    html.write_text(f"<p>{PASSWORD.replace('&', '&amp;').replace(chr(34), '&quot;').replace(chr(39), '&#x27;')}</p>")
    assert sorted(mask_report_files([junit, tmp_path / "htmlcov"])) == sorted([junit, html])
    assert "w0rd" not in junit.read_text() and "w0rd" not in html.read_text()
