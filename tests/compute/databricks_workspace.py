"""A local server playing a Databricks workspace's documented REST API, so the real databricks-sdk runs end to end.

It answers the calls conveyor makes (Files API under /api/2.0/fs, workspace import/export, Jobs API 2.2
runs/submit, runs/get, runs/get-output, runs/cancel, the secrets API, OAuth machine-to-machine tokens) and acts as
the cluster too: a submitted Python wheel task is run here, as a cluster runs it: the wheel is installed (unpacked
onto the task's path), its entry point is called with the task's parameters, with the workspace's files mounted
under `root` (the cluster's `/Volumes` and `/Workspace`), and its output becomes the run's log. A run can instead
follow recorded states (`play_next_run`), for outcomes a local process cannot produce (a cancelled run, a
cluster that did not start).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

RECORDINGS = Path(__file__).parent / "recordings" / "databricks_jobs.json"
MOUNTS = ("/Volumes/", "/Workspace/")
WORKSPACE_ID = "1234567890123456"


def recording(name: str) -> Any:
    return json.loads(RECORDINGS.read_text())[name]


@dataclass
class StandinRun:
    run_id: int
    task_run_id: int
    spec: dict[str, Any]
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = "Waiting for cluster"
    log: Path | None = None
    error: str | None = None
    error_trace: str | None = None
    process: subprocess.Popen[bytes] | None = None
    played: list[dict[str, Any]] = field(default_factory=list)
    played_output: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        if self.played:
            return self.played[0] if len(self.played) == 1 else self.played.pop(0)
        state: dict[str, Any] = {"life_cycle_state": self.life_cycle_state, "state_message": self.state_message}
        if self.result_state:
            state["result_state"] = self.result_state
        return state

    def logs(self) -> str:
        if self.played_output:
            return str(self.played_output.get("logs", ""))
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""


class DatabricksWorkspace:
    """The stand-in workspace. `tokens` are accepted; `expired_tokens` get the recorded refusal."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tokens: set[str] = set()
        self.expired_tokens: set[str] = set()
        self.service_principals: dict[str, str] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.runs: dict[int, StandinRun] = {}
        self.requests: list[tuple[str, str]] = []
        self.mlflow_tokens: list[str] = []
        self.submitted: list[dict[str, Any]] = []
        self._to_play: list[dict[str, Any]] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        workspace = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                workspace.requests.append((self.command, parts.path))
                status, headers, payload = workspace.answer(
                    self.command, unquote(parts.path), query, self.headers, body
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for run in self.runs.values():
            if run.process and run.process.poll() is None:
                run.process.kill()
        self.server.shutdown()
        self.server.server_close()

    def play_next_run(self, name: str) -> None:
        """The next submitted run follows the recorded run `name` instead of executing."""
        self._to_play.append(recording(name))

    def local(self, path: str) -> Path:
        """Where a workspace file lives here (the cluster's mount of /Volumes and /Workspace)."""
        return self.root / path.lstrip("/")

    # -- answering ---------------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> tuple:
        if path == "/.well-known/databricks-config":
            return _json(200, {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": WORKSPACE_ID})
        if path == "/oidc/.well-known/oauth-authorization-server":
            return _json(
                200,
                {
                    "authorization_endpoint": f"{self.url}/oidc/v1/authorize",
                    "token_endpoint": f"{self.url}/oidc/v1/token",
                },
            )
        if path == "/oidc/v1/token":
            return self._oauth_token(headers, body)
        token = (headers.get("Authorization") or "").removeprefix("Bearer ")
        if token in self.expired_tokens:
            answer = recording("invalid-token")
            return _json(answer["status"], answer["body"])
        if token not in self.tokens:
            return _json(
                401,
                {
                    "error_code": "UNAUTHENTICATED",
                    "message": "Credential was not sent or was of an unsupported type for this API.",
                },
            )
        if path == "/api/2.0/preview/scim/v2/Me":
            name = token.split("-")[1] if token.startswith("oauth-") else "ml-engineer@example.com"
            return _json(200, {"id": "7001", "userName": name, "displayName": name, "active": True})
        if path.startswith("/api/2.0/mlflow/"):
            return self._mlflow(path, token)
        if path.startswith("/api/2.0/fs/"):
            return self._files(method, path, body)
        if path.startswith("/api/2.0/workspace/"):
            return self._workspace(method, path, query, body, headers)
        if path.startswith("/api/2.2/jobs/runs/"):
            return self._jobs(method, path.rsplit("/", 1)[1], query, body)
        if path.startswith("/api/2.0/secrets/"):
            return self._secrets(path.rsplit("/", 1)[1], query)
        return _json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for '{method} {path}'"})

    def _oauth_token(self, headers: Any, body: bytes) -> tuple:
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        auth = headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(auth[6:]).decode().partition(":")
        if not client_id or self.service_principals.get(client_id) != client_secret:
            return _json(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        token = f"oauth-{client_id}-{len(self.tokens)}"
        self.tokens.add(token)
        return _json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"})

    def _mlflow(self, path: str, token: str) -> tuple:
        """The workspace's MLflow registry: reads answered empty, each caller's token kept."""
        self.mlflow_tokens.append(token)
        if path.endswith("/registered-models/search"):
            return _json(200, {"registered_models": []})
        return _json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for '{path}'"})

    def _files(self, method: str, path: str, body: bytes) -> tuple:
        kind, _, target = path.removeprefix("/api/2.0/fs/").partition("/")
        local = self.local("/" + target)
        if kind == "directories":
            if method == "PUT":
                local.mkdir(parents=True, exist_ok=True)
                return 204, {}, b""
            return (200, {}, b"") if local.is_dir() else _not_found(target)
        if method == "PUT":
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(body)
            return 204, {}, b""
        if not local.is_file():
            return _not_found(target)
        data = local.read_bytes()
        headers = {"Content-Type": "application/octet-stream", "Last-Modified": "Mon, 01 Jun 2026 00:00:00 GMT"}
        if method == "HEAD":
            return 200, {**headers, "Content-Length-Of-File": str(len(data))}, b""
        return 200, headers, data

    def _workspace(self, method: str, path: str, query: dict[str, str], body: bytes, headers: Any) -> tuple:
        action = path.rsplit("/", 1)[1]
        if action == "mkdirs":
            self.local(json.loads(body)["path"]).mkdir(parents=True, exist_ok=True)
            return _json(200, {})
        if action == "import":
            fields = _multipart(body, headers.get("Content-Type") or "")
            local = self.local(fields["path"].decode())
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(fields["content"])
            return _json(200, {})
        local = self.local(query.get("path", ""))
        if not local.exists():
            return _json(
                404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Path ({query.get('path')}) doesn't exist."}
            )
        if action == "get-status":
            return _json(200, {"path": query["path"], "object_type": "DIRECTORY" if local.is_dir() else "FILE"})
        return 200, {"Content-Type": "application/octet-stream"}, local.read_bytes()

    def _secrets(self, action: str, query: dict[str, str]) -> tuple:
        scope = self.secrets.get(query.get("scope", ""))
        if scope is None:
            return _json(
                404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Scope {query.get('scope')} does not exist!"}
            )
        if action == "list":
            return _json(200, {"secrets": [{"key": key, "last_updated_timestamp": 0} for key in sorted(scope)]})
        key = query.get("key", "")
        if key not in scope:
            return _json(
                404,
                {
                    "error_code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"Failed to get secret {key} for scope {query['scope']}.",
                },
            )
        return _json(200, {"key": key, "value": base64.b64encode(scope[key].encode()).decode()})

    # -- jobs --------------------------------------------------------------------------------------------------

    def _jobs(self, method: str, action: str, query: dict[str, str], body: bytes) -> tuple:
        if action == "submit":
            spec = json.loads(body)
            self.submitted.append(spec)
            with self._lock:
                run = StandinRun(self._next_id, self._next_id + 1, spec)
                self._next_id += 2
            self.runs[run.run_id] = run
            if self._to_play:
                played = self._to_play.pop(0)
                run.played, run.played_output = list(played["states"]), played["output"]
            else:
                threading.Thread(target=self._execute, args=(run,), daemon=True).start()
            return _json(200, {"run_id": run.run_id})
        if action == "cancel":
            run = self.runs[int(json.loads(body)["run_id"])]
            if run.process and run.process.poll() is None:
                run.process.terminate()
            run.life_cycle_state, run.result_state, run.state_message = "TERMINATED", "CANCELED", "Run cancelled."
            return _json(200, {})
        run_id = int(query.get("run_id", "0"))
        if action == "get":
            run = self.runs.get(run_id)
            if run is None:
                return _json(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Run {run_id} does not exist."})
            state = run.state()
            task = {"task_key": run.spec["tasks"][0]["task_key"], "run_id": run.task_run_id, "state": state}
            return _json(
                200,
                {
                    "run_id": run.run_id,
                    "run_name": run.spec.get("run_name"),
                    "state": state,
                    "tasks": [task],
                    "run_page_url": f"{self.url}/#job/runs/{run.run_id}",
                },
            )
        if action == "get-output":
            run = next((r for r in self.runs.values() if r.task_run_id == run_id), None)
            if run is None:
                return _json(400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Run {run_id} does not exist."})
            output: dict[str, Any] = {"logs": run.logs(), "logs_truncated": False, "metadata": {"run_id": run_id}}
            error = run.played_output.get("error") if run.played_output else run.error
            trace = run.played_output.get("error_trace") if run.played_output else run.error_trace
            if error:
                output["error"] = error
            if trace:
                output["error_trace"] = trace
            return _json(200, output)
        return _json(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": action})

    def _execute(self, run: StandinRun) -> None:
        """Run the task as a cluster would: install its wheel, call its entry point, keep its output as the log."""
        task = run.spec["tasks"][0]
        folder = self.root / "cluster" / str(run.run_id)
        library = folder / "lib"
        wheel = (
            task["libraries"][0]["whl"]
            if "libraries" in task
            else run.spec["environments"][0]["spec"]["dependencies"][0]
        )
        with zipfile.ZipFile(self.local(wheel)) as archive:
            archive.extractall(library)
        wheel_task = task["python_wheel_task"]
        [points] = list(library.glob("*.dist-info/entry_points.txt"))
        target = next(
            line.split("=", 1)[1].strip()
            for line in points.read_text().splitlines()
            if line.split("=", 1)[0].strip() == wheel_task["entry_point"]
        )
        module, function = target.split(":")
        parameters = [str(self.root) + p if p.startswith(MOUNTS) else p for p in wheel_task.get("parameters", [])]
        code = f"import sys; from {module} import {function}; sys.exit({function}())"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("CONVEYOR_SECRETS", "CONVEYOR_PROJECT", "CONVEYOR_ENV", "CONVEYOR_RESULT", "DATABRICKS_")
            )
        }
        cluster_token = f"cluster-{run.run_id}"
        self.tokens.add(cluster_token)
        env |= {
            "PYTHONPATH": str(library),
            "DATABRICKS_HOST": self.url,
            "DATABRICKS_TOKEN": cluster_token,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
            "PYTHONUNBUFFERED": "1",
        }
        run.log = folder / "driver.log"
        time.sleep(0.2)
        with run.log.open("wb") as log:
            run.process = subprocess.Popen(
                [sys.executable, "-c", code, *parameters], stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env
            )
            run.life_cycle_state, run.state_message = "RUNNING", ""
            code_returned = run.process.wait()
        if run.result_state == "CANCELED":
            return
        if code_returned == 0:
            run.result_state = "SUCCESS"
        else:
            lines = [line for line in run.logs().splitlines() if line.strip()]
            run.result_state = "FAILED"
            run.state_message = "Task train failed with message: Workload failed, see run output for details."
            run.error = lines[-1] if lines else f"exit status {code_returned}"
            run.error_trace = "\n".join(lines[-30:])
        run.life_cycle_state = "TERMINATED"


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _not_found(path: str) -> tuple:
    return _json(404, {"error_code": "NOT_FOUND", "message": f"The file being accessed is not found: /{path}"})


def _multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    boundary = content_type.split("boundary=", 1)[1].encode()
    fields = {}
    for part in body.split(b"--" + boundary):
        head, _, value = part.partition(b"\r\n\r\n")
        if b'name="' in head:
            name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
            fields[name] = value.removesuffix(b"\r\n")
    return fields
