"""A local HTTP server that plays recorded API responses, so the real client libraries run end to end."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDINGS = Path(__file__).parent / "recordings"


def recording(api: str, name: str) -> dict[str, Any]:
    """One recorded response of `recordings/<api>.json`: status, headers and JSON body."""
    return json.loads((RECORDINGS / f"{api}.json").read_text())[name]


@dataclass
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Route:
    method: str
    path: str
    response: dict[str, Any] | Callable[[SeenRequest], dict[str, Any]]
    query: dict[str, str] = field(default_factory=dict)

    def matches(self, request: SeenRequest) -> bool:
        return (
            request.method == self.method
            and request.path == self.path
            and all(request.query.get(k) == v for k, v in self.query.items())
        )


class RecordedAPI:
    """Answers each request with the first matching route's recording (404 otherwise) and keeps every request."""

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.requests: list[SeenRequest] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = SeenRequest(
                    method=self.command,
                    path=parts.path,
                    query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                api.requests.append(seen)
                route = next((r for r in api.routes if r.matches(seen)), None)
                if route is None:
                    answer = {"status": 404, "headers": {"Content-Type": "application/json"}, "body": {}}
                else:
                    answer = route.response(seen) if callable(route.response) else route.response
                body = b"" if answer.get("body") is None else json.dumps(answer["body"]).encode()
                self.send_response(answer["status"])
                for name, value in answer.get("headers", {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def answer(
        self,
        method: str,
        path: str,
        response: dict[str, Any] | Callable[[SeenRequest], dict[str, Any]],
        **query: str,
    ) -> None:
        self.routes.append(Route(method, path, response, query))

    def seen(self, method: str | None = None, path: str | None = None) -> list[SeenRequest]:
        return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def reset(self) -> None:
        self.routes.clear()
        self.requests.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
