"""`conveyor ui` in a real browser (Debian's chromium driven by Playwright): the release line as people see it.

The flow is the demo's: a build goes live in QA, is requested in prod, waits for its approvers, is approved with
the CLI and shows live with its signers. Screenshots of each page go to results/ui/.
"""

from __future__ import annotations

import html
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from release_support import Keys, build, free_port

from conveyor.release.releases import Releases

pytestmark = [pytest.mark.services, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parents[2] / "results" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
INJECTION = '<img src=x onerror="document.title=\'owned\'"><b>bold</b> & "quotes"'


def conveyor(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "conveyor.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def dashboard(sqlite_releases: Releases) -> Iterator[str]:
    """`conveyor ui` serving the project, as a user starts it; its base URL."""
    port = free_port()
    root = sqlite_releases.project.root
    command = [sys.executable, "-m", "conveyor.cli.main", "ui", "--project", str(root), "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if server.poll() is not None:
                raise AssertionError(f"conveyor ui exited: {server.stdout.read() if server.stdout else ''}") from None
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).is_file(), "chromium is missing: scripts/install-system-deps.sh installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)  # type: ignore[attr-defined]
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: object, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def test_a_pending_prod_release_waits_for_its_approvers_then_shows_live_with_its_signers(
    sqlite_releases: Releases, keys: Keys, dashboard: str, page: object
) -> None:
    releases = sqlite_releases
    qa = releases.create(build(releases, "dashboard", model_version="3"), "qa", keys.carol)
    assert qa.status == "live", qa.error
    pending = releases.promote(qa.id, "prod", keys.carol)
    root = str(releases.project.root)

    page.goto(f"{dashboard}/waiting")  # type: ignore[attr-defined]
    card = page.locator(f"#pending-{pending.id}")  # type: ignore[attr-defined]
    assert card.is_visible()
    assert card.locator(".approvers").inner_text() == "alice, bob, dave"
    assert f"conveyor approve {pending.id}" in card.locator(".command").inner_text()
    shot(page, "waiting")
    page.goto(f"{dashboard}/")  # type: ignore[attr-defined]
    assert "1 waiting for approval" in page.locator("#stage-prod").inner_text()  # type: ignore[attr-defined]

    for who, comment in (("alice", INJECTION), ("bob", "ship it")):
        done = conveyor(
            "approve", str(pending.id), "--key", str(keys.path(who)), "--comment", comment, "--project", root
        )
        assert done.returncode == 0, done.stderr

    page.goto(f"{dashboard}/stages/prod")  # type: ignore[attr-defined]
    live = page.locator("#live")  # type: ignore[attr-defined]
    assert f"{pending.id} (promotion)" in live.inner_text()
    assert page.locator("#live-approved").inner_text() == "alice, bob"  # type: ignore[attr-defined]
    assert "signatures verified" in live.inner_text()
    signed = live.locator(".signer").all_inner_texts()
    assert any(text.startswith("bob") and "release.approved" in text for text in signed), signed
    assert page.locator("#audit-badge").inner_text().strip() == "ledger verified"  # type: ignore[attr-defined]
    shot(page, "stage-prod")

    page.goto(f"{dashboard}/releases/{pending.id}")  # type: ignore[attr-defined]
    comments = page.locator("td.comment").all_inner_texts()  # type: ignore[attr-defined]
    assert INJECTION in comments  # shown as the text it is
    assert page.locator("td.comment img").count() == 0  # type: ignore[attr-defined]
    assert page.locator("td.comment b").count() == 0  # type: ignore[attr-defined]
    assert page.title() != "owned"  # type: ignore[attr-defined]
    shot(page, "release")


def test_a_failed_gate_shows_red_with_the_failing_metric(
    sqlite_releases: Releases, dashboard: str, page: object
) -> None:
    path = build(sqlite_releases, "bad-gate", gates_ok=False)
    record = json.loads(path.read_text())
    record["gates"] = {
        "ok": False,
        "champion": "worst_regression@prod",
        "results": [
            {
                "metric": "r2",
                "value": -3134.2,
                "rule": ">= -0.05",
                "champion": 0.011,
                "passed": False,
                "threshold": -0.05,
                "note": "",
            },
            {
                "metric": "mae",
                "value": 79000.0,
                "rule": "<= 1.1 * champion",
                "champion": 80000.0,
                "passed": True,
                "threshold": 88000.0,
                "note": "",
            },
        ],
    }
    path.write_text(json.dumps(record))
    short = record["package"]["digest"].removeprefix("sha256:")[:12]

    page.goto(f"{dashboard}/builds")  # type: ignore[attr-defined]
    assert "failed" in page.locator(f"#build-{short}").inner_text()  # type: ignore[attr-defined]
    page.goto(f"{dashboard}/builds/{short}")  # type: ignore[attr-defined]
    failing = page.locator("#gate-r2")  # type: ignore[attr-defined]
    assert "FAIL" in failing.inner_text() and "-3134.2" in failing.inner_text()
    red = failing.locator("td").first.evaluate("cell => getComputedStyle(cell).backgroundColor")
    assert red == "rgb(255, 235, 233)", red
    assert "pass" in page.locator("#gate-mae").inner_text()  # type: ignore[attr-defined]
    shot(page, "build")
    page.goto(f"{dashboard}/models")  # type: ignore[attr-defined]
    assert page.locator("#chart-r2 svg").count() == 1  # type: ignore[attr-defined]
    shot(page, "models")


def test_what_does_not_exist_is_a_404_naming_it_and_nothing_changes_state(
    sqlite_releases: Releases, dashboard: str
) -> None:
    for path, named in (
        ("/stages/nope", "no release stage 'nope'"),
        ("/releases/999", "no release 999"),
        ("/builds/abcdef012345", "no build abcdef012345"),
        ("/nowhere", "no page /nowhere"),
    ):
        answer = httpx.get(dashboard + path)
        assert answer.status_code == 404 and named in html.unescape(answer.text), path
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = httpx.request(method, f"{dashboard}/waiting")
        assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD"
    answer = httpx.get(f"{dashboard}/", headers={"host": "evil.example:80"})
    assert answer.status_code == 421
    answer = httpx.get(f"{dashboard}/")
    assert "script-src" not in answer.headers["content-security-policy"]
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert "<script" not in answer.text


def test_a_ledger_that_fails_verification_still_renders_with_the_audit_red(
    sqlite_releases: Releases, keys: Keys, dashboard: str, page: object
) -> None:
    import sqlite3

    released = sqlite_releases.create(build(sqlite_releases, "tampered"), "qa", keys.carol)
    assert released.status == "live", released.error
    database = sqlite_releases.project.state_dir / "ledger.db"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE events SET principal = 'mallory' WHERE seq = 2")
    page.goto(f"{dashboard}/audit")  # type: ignore[attr-defined]
    verdict = page.locator("#verdict").inner_text()  # type: ignore[attr-defined]
    assert "does not verify" in verdict and "event 2 was edited" in verdict, verdict
    assert page.locator("#audit-badge").inner_text().strip() == "ledger does not verify"  # type: ignore[attr-defined]
    shot(page, "audit-broken")
    for path in ("/", "/stages/qa", "/waiting", "/builds", "/models"):
        assert httpx.get(dashboard + path).status_code == 200, path
