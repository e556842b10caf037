"""The dashboard as an ASGI app: server-rendered pages of one project's release line, read-only.

Every page answers GET (and HEAD) only; nothing changes state. Pages are Jinja2 templates with autoescape on
(model names, comments and tags are user input), charts are SVG drawn on the server, and the only assets are the
package's own stylesheet and the build's coverage report. Responses carry a Content-Security-Policy without
scripts; a request whose Host is not one this server was bound for is refused (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape

from conveyor.config import Project
from conveyor.serving.asgi import TEXT, Headers, Receive, Scope, Send, header, send_bytes
from conveyor.ui.charts import metric_chart, timeline
from conveyor.ui.reading import ProjectReader, metric_series

if TYPE_CHECKING:
    from pathlib import Path

PAGE_SIZE = 50
CSP = "; ".join(
    [
        "default-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY: Headers = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
REPORT_SECURITY: Headers = [  # coverage.py's own HTML report runs its script
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
]
HTML = b"text/html; charset=utf-8"


@dataclass(frozen=True)
class Page:
    """A rendered answer: status, body and content type."""

    status: int
    body: bytes
    content_type: bytes = HTML
    headers: Headers | None = None


PageHandler = Callable[[re.Match[str], dict[str, list[str]]], Page]


class DashboardApp:
    """The ASGI app of `conveyor ui` for one project."""

    def __init__(self, project: Project, allowed_hosts: set[str] | None = None) -> None:
        self.project = project
        self.reader = ProjectReader(project)
        self.allowed_hosts = allowed_hosts
        self.templates = Environment(
            loader=PackageLoader("conveyor.ui", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.templates.globals.update(project=project.name, short=_short, when=_when)
        self.routes: list[tuple[re.Pattern[str], PageHandler]] = [
            (re.compile(r"/"), self.overview),
            (re.compile(r"/stages/(?P<stage>[^/]+)"), self.stage),
            (re.compile(r"/releases/(?P<id>[0-9]{1,9})"), self.release),
            (re.compile(r"/waiting"), self.waiting),
            (re.compile(r"/builds"), self.builds),
            (re.compile(r"/builds/(?P<digest>[^/]+)"), self.build),
            (re.compile(r"/builds/(?P<digest>[^/]+)/coverage/(?P<path>.*)"), self.coverage),
            (re.compile(r"/models"), self.models),
            (re.compile(r"/audit"), self.audit),
            (re.compile(r"/static/(?P<name>[a-z0-9._-]+)"), self.static),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        page = await self.answer(scope)
        headers = list(page.headers if page.headers is not None else SECURITY)
        if page.status == 405:
            headers.append((b"allow", b"GET, HEAD"))
        body = b"" if scope["method"] == "HEAD" else page.body
        await send_bytes(send, page.status, body, page.content_type, headers)

    async def answer(self, scope: Scope) -> Page:
        if not self._host_allowed(scope):
            return Page(421, b"this dashboard does not answer for that Host\n", TEXT)
        if scope["method"] not in ("GET", "HEAD"):
            return Page(405, b"the dashboard only reads: GET and HEAD\n", TEXT)
        path = scope["path"].rstrip("/") or "/"
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        for pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match:
                return await asyncio.to_thread(handler, match, query)
        return self.not_found(f"no page {path}")

    def _host_allowed(self, scope: Scope) -> bool:
        if self.allowed_hosts is None:
            return True
        host = (header(scope, b"host") or b"").decode("latin-1").lower()
        return host in self.allowed_hosts

    # --- rendering -------------------------------------------------------------------------------------------
    def render(self, template: str, status: int = 200, **values: Any) -> Page:
        snapshot, problem = self.reader.snapshot()
        audit_ok = None if snapshot is None else snapshot.verification.ok
        html = self.templates.get_template(template).render(audit_ok=audit_ok, ledger_problem=problem, **values)
        return Page(status, html.encode())

    def not_found(self, what: str) -> Page:
        return self.render("missing.html", status=404, what=what)

    # --- pages -----------------------------------------------------------------------------------------------
    def overview(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        snapshot, _ = self.reader.snapshot()
        stages = []
        for name, policy in self.project.config.release.items():
            live = snapshot.live(name) if snapshot else None
            pending = snapshot.count(name, "pending") if snapshot else 0
            stages.append({"name": name, "policy": policy, "live": live, "pending": pending})
        return self.render("overview.html", stages=stages, snapshot=snapshot)

    def stage(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        name = match["stage"]
        if name not in self.project.config.release:
            return self.not_found(
                f"no release stage {name!r} (this project has {', '.join(self.project.config.release)})"
            )
        snapshot, _ = self.reader.snapshot()
        page = _page(query)
        total = snapshot.count(name) if snapshot else 0
        releases = snapshot.releases(name, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE) if snapshot else []
        history = snapshot.history(name) if snapshot else []
        chart = timeline(history[-30:], snapshot.now) if snapshot else ""
        pages = max(1, -(-total // PAGE_SIZE))
        return self.render(
            "stage.html",
            stage=name,
            policy=self.project.config.release[name],
            snapshot=snapshot,
            live=snapshot.live(name) if snapshot else None,
            releases=releases,
            history=history[::-1][:30],
            stopped=snapshot.stopped(name) if snapshot else None,
            rolling=snapshot.rolling_out(name) if snapshot else None,
            chart=chart,
            page=page,
            pages=pages,
            total=total,
        )

    def release(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        snapshot, _ = self.reader.snapshot()
        view = snapshot.release(int(match["id"])) if snapshot else None
        if view is None:
            return self.not_found(f"no release {match['id']} in the verified ledger")
        return self.render("release.html", release=view, snapshot=snapshot, now=snapshot.now if snapshot else None)

    def waiting(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        snapshot, _ = self.reader.snapshot()
        page = _page(query)
        total = snapshot.count(status="pending") if snapshot else 0
        offset = (page - 1) * PAGE_SIZE
        pending = snapshot.releases(status="pending", offset=offset, limit=PAGE_SIZE) if snapshot else []
        pages = max(1, -(-total // PAGE_SIZE))
        return self.render("waiting.html", pending=pending, snapshot=snapshot, page=page, pages=pages, total=total)

    def builds(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        builds, problem = self.reader.builds()
        return self.render("builds.html", builds=builds, problem=problem)

    def build(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        build = self.reader.build(match["digest"])
        if build is None:
            return self.not_found(f"no build {match['digest']} in {self.project.state_dir / 'builds'}")
        snapshot, _ = self.reader.snapshot()
        shipped = snapshot.releases(build=build.digest, limit=PAGE_SIZE) if snapshot else []
        total = snapshot.count(build=build.digest) if snapshot else 0
        return self.render("build.html", build=build, shipped=shipped, shipped_total=total)

    def coverage(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        build = self.reader.build(match["digest"])
        folder = build.coverage_dir if build else None
        if folder is None:
            return self.not_found(f"no coverage report for build {match['digest']}")
        wanted = match["path"] or "index.html"
        root = folder.resolve()
        target = (root / wanted).resolve()
        if not target.is_relative_to(root) or not target.is_file() or (root / wanted).is_symlink():
            return self.not_found(f"no file {wanted} in the coverage report")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        content_type = f"{kind}; charset=utf-8" if kind.startswith("text/") else kind
        return Page(200, target.read_bytes(), content_type.encode(), REPORT_SECURITY)

    def models(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        environments = self.reader.models()
        builds, problem = self.reader.builds()
        snapshot, _ = self.reader.snapshot()
        champions = {live.build for stage in self.project.config.release if snapshot and (live := snapshot.live(stage))}
        charts = [(s.metric, metric_chart(s)) for s in metric_series(builds, champions)]
        return self.render("models.html", environments=environments, charts=charts, problem=problem)

    def audit(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        snapshot, problem = self.reader.snapshot()
        entries, entries_problem = self.reader.audit()
        return self.render(
            "audit.html",
            report=snapshot.report if snapshot else None,
            entries=entries[::-1],
            problem=problem or entries_problem,
        )

    def static(self, match: re.Match[str], query: dict[str, list[str]]) -> Page:
        asset = resources.files("conveyor.ui").joinpath("static", match["name"])
        if not asset.is_file():
            return self.not_found(f"no asset {match['name']}")
        kind = mimetypes.guess_type(match["name"])[0] or "application/octet-stream"
        headers = [*SECURITY[:-1], (b"cache-control", b"max-age=3600")]
        return Page(200, asset.read_bytes(), f"{kind}; charset=utf-8".encode(), headers)


def _page(query: dict[str, list[str]]) -> int:
    text = (query.get("page") or ["1"])[0]
    return int(text) if text.isdigit() and 0 < int(text) < 1_000_000 else 1


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "-"


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(project: Project | str | Path | None = None, allowed_hosts: set[str] | None = None) -> DashboardApp:
    """The dashboard's ASGI app for a project (a Project, its folder, or None for the one holding the cwd)."""
    from conveyor.config import load_project

    loaded = project if isinstance(project, Project) else load_project(project)
    return DashboardApp(loaded, allowed_hosts)
