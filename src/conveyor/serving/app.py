"""The scoring ASGI application: a bare ASGI callable with a dictionary of routes, no framework on the hot path.

Endpoints: `POST /score` (score.py's own protocol: the body handed to `run()` as JSON text, or a JSON list of
requests), `POST /invocations` (MLflow), Open Inference Protocol v2 under `/v2`, `/health/live`,
`/health/ready`, `/metrics` (Prometheus text) and `/openapi.json`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import traceback
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import orjson

from conveyor.secrets.redaction import redact
from conveyor.serving.batching import Batcher, run_each
from conveyor.serving.calls import CallPolicy, Offload
from conveyor.serving.loader import (
    ScoreModule,
    check_package_dir,
    load_and_init,
    read_package_info,
)
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.openapi import build_openapi
from conveyor.serving.problems import HTTPProblem, bad_payload, request_error_status
from conveyor.serving.protocols import mlflow_records, v2_datatype, v2_records, v2_response

log = logging.getLogger("conveyor.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[int]]

JSON = b"application/json"
DRAIN_LIMIT = 64 * 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


def _default(value: Any) -> Any:
    """JSON for what orjson does not know: numpy arrays and scalars, pandas objects, sets."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


async def send_json(send: Send, status: int, body: bytes, content_type: bytes = JSON) -> int:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
    return status


class ScoringApp:
    """ASGI app serving one package directory's score.py. Call `startup()` (or let ASGI lifespan do it)."""

    def __init__(
        self,
        package_dir: str | Path,
        *,
        name: str | None = None,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        offload: Offload = "auto",
        init_in_background: bool = True,
        on_init_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.package_dir = check_package_dir(Path(package_dir))
        self.info = read_package_info(self.package_dir, name)
        self.metrics = ServingMetrics()
        self.policy = CallPolicy(self.metrics, offload)
        self.max_batch_size, self.max_wait_ms = max_batch_size, max_wait_ms
        self.max_body_bytes = max_body_bytes
        self.init_in_background = init_in_background
        self.on_init_failure = on_init_failure
        self.score: ScoreModule | None = None
        self.batcher: Batcher | None = None
        self.ready = False
        self.init_error: BaseException | None = None
        self._init_task: asyncio.Task[None] | None = None
        self._openapi: bytes | None = None
        self._routes: dict[str, tuple[str, str, Handler]] = {
            "/score": ("/score", "POST", self._score),
            "/invocations": ("/invocations", "POST", self._invocations),
            "/health/live": ("health", "GET", self._live),
            "/health/ready": ("health", "GET", self._ready),
            "/v2/health/live": ("health", "GET", self._v2_live),
            "/v2/health/ready": ("health", "GET", self._v2_ready),
            "/v2": ("/v2", "GET", self._v2_server),
            "/metrics": ("/metrics", "GET", self._metrics),
            "/openapi.json": ("/openapi.json", "GET", self._openapi_json),
        }
        prefix = f"/v2/models/{self.info.name}"
        for base in (prefix, f"{prefix}/versions/{self.info.version}"):
            self._routes[base] = ("/v2/models", "GET", self._v2_model)
            self._routes[f"{base}/ready"] = ("/v2/models", "GET", self._v2_model_ready)
            self._routes[f"{base}/infer"] = ("/v2/infer", "POST", self._v2_infer)

    # start-up -----------------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Import score.py and call init() once, in a thread; in the background unless told to wait."""
        if self._init_task is None:
            self._init_task = asyncio.get_running_loop().create_task(self._initialize())
        if not self.init_in_background:
            await self._init_task
            if self.init_error is not None:
                raise self.init_error

    async def _initialize(self) -> None:
        started = perf_counter()
        try:
            score = await asyncio.get_running_loop().run_in_executor(None, load_and_init, self.package_dir)
        except BaseException as exc:  # reported, then the owner decides (the server exits)
            self.init_error = exc
            details = "".join(traceback.format_exception(exc))
            log.error(redact(f"init() of {self.package_dir / 'score.py'} failed:\n{details}"))
            if self.on_init_failure is not None:
                self.on_init_failure(exc)
            return
        self.score = score
        gc.collect()
        gc.freeze()  # start-up objects (the model, imported modules) leave the collector's view: shorter pauses
        if score.run_batch is not None:
            self.batcher = Batcher(
                score.run_batch, score.run, self.policy, self.metrics, self.max_batch_size, self.max_wait_ms
            )
        self.ready = True
        log.info(
            "model %s version %s ready in %.2f s (pid %d, %s)",
            self.info.name,
            self.info.version,
            perf_counter() - started,
            os.getpid(),
            "run_batch: adaptive batching" if self.batcher else "run() per request",
        )

    # ASGI ---------------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(receive, send)
            return
        start = perf_counter()
        if self._init_task is None:
            await self.startup()
        route = self._routes.get(scope["path"])
        label = route[0] if route is not None else "other"
        try:
            if route is None:
                raise self._not_found(scope["path"])
            if scope["method"] != route[1]:
                raise HTTPProblem(405, "method_not_allowed", f"{scope['path']} accepts {route[1]} only")
            status = await route[2](scope, receive, send)
        except HTTPProblem as problem:
            status = await self._send_problem(send, problem)
        except ClientGone:
            status = 499
        self.metrics.observe_request(label, status, perf_counter() - start)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except BaseException as exc:  # reported to the ASGI server
                    await send({"type": "lifespan.startup.failed", "message": redact(str(exc))})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.policy.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # request plumbing ---------------------------------------------------------------------------------------

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        message = await receive()
        body = message.get("body", b"")
        limit = self.max_body_bytes
        if not message.get("more_body", False):
            if len(body) > limit:
                raise self._too_large()
            return body
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > limit:
                await self._drain(receive, message)
                raise self._too_large()
        chunks, size = [body], len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._drain(receive, message)
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    async def _drain(self, receive: Receive, message: dict[str, Any]) -> None:
        """Read and drop the rest of an oversized body (up to a cap), so the client can read the 413."""
        drained = 0
        while message.get("more_body", False) and drained < DRAIN_LIMIT:
            message = await receive()
            drained += len(message.get("body", b""))

    def _too_large(self) -> HTTPProblem:
        return HTTPProblem(413, "too_large", f"request body is over the limit of {self.max_body_bytes} bytes")

    def _not_found(self, path: str) -> HTTPProblem:
        if path.startswith("/v2/models/"):
            return HTTPProblem(
                404,
                "not_found",
                f"no model at {path}: this server serves model {self.info.name!r} version {self.info.version!r}",
            )
        return HTTPProblem(404, "not_found", f"no endpoint {path}; see /openapi.json")

    async def _send_problem(self, send: Send, problem: HTTPProblem) -> int:
        self.metrics.count_error(problem.kind)
        body = {"error": redact(problem.message), "kind": problem.kind, **problem.extra}
        return await send_json(send, problem.status, dumps(body))

    def _not_ready(self) -> HTTPProblem:
        if self.init_error is not None:
            return HTTPProblem(503, "not_ready", "the model failed to initialise; see the server log")
        return HTTPProblem(503, "not_ready", "the model is still initialising (init() is running)")

    def _parse(self, body: bytes) -> Any:
        try:
            return loads(body)
        except JSONDecodeError as exc:
            raise HTTPProblem(400, "bad_json", f"request body is not valid JSON: {exc}") from None

    def _failure(self, exc: BaseException, path: str, record: int | None = None) -> HTTPProblem:
        """A score.py exception as an answer: 4xx for a request error (with its field), else 500 with an id."""
        status = request_error_status(exc)
        where = {} if record is None else {"record": record}
        if status is not None:
            field = getattr(exc, "field", None)
            return HTTPProblem(status, "invalid_request", str(exc), field=field, **where)
        error_id = uuid.uuid4().hex[:16]
        details = "".join(traceback.format_exception(exc))
        log.error(redact(f"error_id={error_id} run() raised on {path}:\n{details}"))
        return HTTPProblem(500, "score_error", f"run() raised {type(exc).__name__}: {exc}", error_id=error_id, **where)

    def _encode(self, result: Any) -> bytes:
        try:
            return dumps(result)
        except TypeError as exc:
            raise self._failure(TypeError(f"run() returned a value that is not JSON: {exc}"), "encode") from None

    async def _score_records(self, records: list[Any], path: str) -> list[Any]:
        """Score several records in one call: run_batch() (with per-record fallback) or run() on each."""
        score = self.score
        assert score is not None
        if not records:
            return []
        texts = [dumps(record).decode() for record in records]
        if self.batcher is not None:
            self.metrics.batch_size.observe(len(texts))
            outcomes = await self.policy.call(self.batcher.execute, texts)
        else:
            run = score.run
            outcomes = await self.policy.call(lambda items: run_each(run, items), texts)
        results = []
        for index, (ok, value) in enumerate(outcomes):
            if not ok:
                raise self._failure(value, path, index)
            results.append(value)
        return results

    # handlers -----------------------------------------------------------------------------------------------

    async def _score(self, scope: Scope, receive: Receive, send: Send) -> int:
        batcher = self.batcher
        if batcher is not None:
            batcher.arrive()
        try:
            body = await self._read_body(scope, receive)
            if not self.ready:
                raise self._not_ready()
            payload = self._parse(body)
            if type(payload) is list:
                results = await self._score_records(payload, "/score")
                return await send_json(send, 200, self._encode(results))
            text = body.decode()
            if batcher is not None:
                future = batcher.submit(text)
                batcher = None
                try:
                    result = await future
                except Exception as exc:  # turned into the answer
                    raise self._failure(exc, "/score") from None
            else:
                policy = self.policy
                score = self.score
                assert score is not None
                try:
                    if policy.inline:
                        result = policy.call_inline(score.run, text)
                    else:
                        result = await policy.submit(score.run, text)
                except Exception as exc:  # turned into the answer
                    raise self._failure(exc, "/score") from None
            return await send_json(send, 200, self._encode(result))
        finally:
            if batcher is not None:
                batcher.leave()

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> int:
        body = await self._read_body(scope, receive)
        if not self.ready:
            raise self._not_ready()
        records = mlflow_records(self._parse(body))
        results = await self._score_records(records, "/invocations")
        return await send_json(send, 200, self._encode({"predictions": results}))

    async def _v2_infer(self, scope: Scope, receive: Receive, send: Send) -> int:
        body = await self._read_body(scope, receive)
        if not self.ready:
            raise self._not_ready()
        payload = self._parse(body)
        records = v2_records(payload)
        results = await self._score_records(records, scope["path"])
        response = v2_response(self.info.name, self.info.version, payload.get("id"), results, payload.get("outputs"))
        return await send_json(send, 200, self._encode(response))

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> int:
        return await send_json(send, 200, dumps({"status": "live", "pid": os.getpid()}))

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> int:
        if not self.ready:
            raise self._not_ready()
        info = {"status": "ready", "model": self.info.name, "version": self.info.version, "pid": os.getpid()}
        return await send_json(send, 200, dumps(info))

    async def _v2_live(self, scope: Scope, receive: Receive, send: Send) -> int:
        return await send_json(send, 200, b'{"live":true}')

    async def _v2_ready(self, scope: Scope, receive: Receive, send: Send) -> int:
        return await send_json(send, 200 if self.ready else 503, dumps({"ready": self.ready}))

    async def _v2_model_ready(self, scope: Scope, receive: Receive, send: Send) -> int:
        body = dumps({"name": self.info.name, "ready": self.ready})
        return await send_json(send, 200 if self.ready else 503, body)

    async def _v2_server(self, scope: Scope, receive: Receive, send: Send) -> int:
        from conveyor import __version__

        return await send_json(send, 200, dumps({"name": "conveyor", "version": __version__, "extensions": []}))

    async def _v2_model(self, scope: Scope, receive: Receive, send: Send) -> int:
        example = self.score.example if self.score is not None else None
        inputs = []
        if isinstance(example, dict):
            inputs = [{"name": k, "datatype": v2_datatype([v]), "shape": [-1]} for k, v in example.items()]
        metadata = {
            "name": self.info.name,
            "versions": [self.info.version],
            "platform": "conveyor-score-py",
            "inputs": inputs,
            "outputs": [],
        }
        return await send_json(send, 200, dumps(metadata))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> int:
        return await send_json(send, 200, self.metrics.render(), b"text/plain; version=0.0.4; charset=utf-8")

    async def _openapi_json(self, scope: Scope, receive: Receive, send: Send) -> int:
        document = self._openapi
        if document is None:
            example = self.score.example if self.score is not None else None
            document = dumps(build_openapi(self.info.name, self.info.version, example))
            if self.score is not None:
                self._openapi = document
        return await send_json(send, 200, document)


def create_app(package_dir: str | Path, **options: Any) -> ScoringApp:
    """The ASGI app serving `package_dir` (see `ScoringApp` for the options)."""
    return ScoringApp(package_dir, **options)


__all__ = ["ScoringApp", "bad_payload", "create_app"]
