"""The scoring ASGI application: a bare ASGI callable with a dictionary of routes, no framework on the hot path.

Endpoints: `POST /score` (score.py's own protocol: the body handed to `run()` as JSON text, or a JSON list of
requests), `POST /invocations` (MLflow), Open Inference Protocol v2 under `/v2`, `/health/live`,
`/health/ready`, `/metrics` (Prometheus text) and `/openapi.json`.

Every failure is a JSON problem (`{"error", "kind", "field"?, "error_id"?}`) counted in the metrics: 4xx for what
the client can fix, naming the field at fault; 5xx carry only an error id, whose details are in the log.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import traceback
import uuid
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Unpack

import orjson

from conveyor.secrets.redaction import redact
from conveyor.serving.asgi import (
    CLOSE,
    BodyTooLarge,
    ClientGone,
    Receive,
    Route,
    Scope,
    Send,
    deadline,
    dumps,
    header,
    receive_body,
    send_json,
)
from conveyor.serving.batching import Batcher, run_each
from conveyor.serving.calls import CallPolicy, Offload
from conveyor.serving.deadlines import Deadlines
from conveyor.serving.drift import open_window
from conveyor.serving.loader import ScoreModule, check_package_dir, load_and_init, read_package_info
from conveyor.serving.metrics import CONTENT_TYPE, UNBUILT, ServingMetrics
from conveyor.serving.openapi import build_openapi
from conveyor.serving.problems import HTTPProblem, ProblemKind, request_error_status, too_many_records
from conveyor.serving.protocols import (
    csv_records,
    mlflow_records,
    pandas_records,
    v2_datatype,
    v2_records,
    v2_response,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.serving.options import AppOptions

log = logging.getLogger("conveyor.serving")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_RECORDS = 10_000
loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def new_error_id() -> str:
    return uuid.uuid4().hex[:16]


class ScoringApp:
    """ASGI app serving one package directory's score.py. Call `startup()` (or let ASGI lifespan do it).

    Limits: `max_body_bytes` per body (413), `max_records` per request (413), `body_timeout` seconds to receive a
    body (408), `timeout` seconds for score.py to answer (504). `on_stuck(reason)` is called when a call into
    score.py has run past twice the timeout (the worker should be replaced); with it a watchdog runs.
    """

    def __init__(
        self,
        package_dir: str | Path,
        *,
        name: str | None = None,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_records: int = DEFAULT_MAX_RECORDS,
        offload: Offload | str = Offload.ALWAYS,
        timeout: float = 60.0,
        body_timeout: float = 30.0,
        init_in_background: bool = True,
        on_init_failure: Callable[[BaseException], None] | None = None,
        on_stuck: Callable[[str], None] | None = None,
    ) -> None:
        self.package_dir = check_package_dir(Path(package_dir))
        self.info = read_package_info(self.package_dir, name)
        window, no_drift = open_window(self.package_dir)
        self.metrics = ServingMetrics(self.info.digest or UNBUILT, window, no_drift)
        self.policy = CallPolicy(self.metrics, offload)
        self.max_batch_size, self.max_wait_ms = max_batch_size, max_wait_ms
        self.max_body_bytes, self.max_records = max_body_bytes, max_records
        self.timeout, self.body_timeout = timeout, body_timeout
        self.deadlines = Deadlines()
        self.init_in_background = init_in_background
        self.on_init_failure = on_init_failure
        self.on_stuck = on_stuck
        self.score: ScoreModule | None = None
        self.batcher: Batcher | None = None
        self.ready = False
        self.init_error: BaseException | None = None
        self._init_task: asyncio.Task[None] | None = None
        self._watchdog: Any = None
        self._openapi: bytes | None = None
        get, post = ("GET", "HEAD"), ("POST",)
        self._routes: dict[str, Route] = {
            "/score": Route("/score", post, self._score),
            "/invocations": Route("/invocations", post, self._invocations),
            "/health/live": Route("health", get, self._live),
            "/health/ready": Route("health", get, self._ready),
            "/v2/health/live": Route("health", get, self._v2_live),
            "/v2/health/ready": Route("health", get, self._v2_ready),
            "/v2": Route("/v2", get, self._v2_server),
            "/metrics": Route("/metrics", get, self._metrics),
            "/openapi.json": Route("/openapi.json", get, self._openapi_json),
        }
        prefix = f"/v2/models/{self.info.name}"
        for base in (prefix, f"{prefix}/versions/{self.info.version}"):
            self._routes[base] = Route("/v2/models", get, self._v2_model)
            self._routes[f"{base}/ready"] = Route("/v2/models", get, self._v2_model_ready)
            self._routes[f"{base}/infer"] = Route("/v2/infer", post, self._v2_infer)

    # start-up -----------------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Import score.py and call init() once, in a thread; in the background unless told to wait."""
        if self._init_task is None:
            loop = asyncio.get_running_loop()
            if self.on_stuck is not None:
                from conveyor.serving.watchdog import Watchdog

                self._watchdog = Watchdog(loop, self.policy, self.timeout, self.on_stuck)
                self._watchdog.start()
            self._init_task = loop.create_task(self._initialize())
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

    def shutdown(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        self.policy.shutdown()
        self.deadlines.cancel_all()
        self.metrics.flush()

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
        label = route.label if route is not None else "other"
        try:
            if route is None:
                raise self._not_found(scope["path"])
            if scope["method"] not in route.methods:
                raise HTTPProblem(
                    405,
                    ProblemKind.METHOD_NOT_ALLOWED,
                    f"{scope['path']} accepts {' and '.join(route.methods)}, not {scope['method']}",
                    headers=[(b"allow", route.allow)],
                )
            status = await route.handler(scope, receive, send)
        except HTTPProblem as problem:
            status = await self._send_problem(send, problem)
        except ClientGone:
            status = 499
        except Exception as exc:  # a fault of the server itself: logged with an id, never shown to the client
            status = await self._send_problem(send, self._server_error(exc, scope["path"]))
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
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # request plumbing ---------------------------------------------------------------------------------------

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        """The whole request body, within `max_body_bytes` (else 413) and `body_timeout` seconds (else 408)."""
        with deadline(self.deadlines, self.body_timeout, self._body_too_slow):
            try:
                return await receive_body(scope, receive, self.max_body_bytes)
            except BodyTooLarge:
                raise self._too_large() from None

    def _body_too_slow(self) -> HTTPProblem:
        return HTTPProblem(
            408, ProblemKind.TIMEOUT, f"the request body did not arrive within {self.body_timeout:g} s", headers=CLOSE
        )

    def _too_large(self) -> HTTPProblem:
        return HTTPProblem(413, ProblemKind.TOO_LARGE, f"request body is over the limit of {self.max_body_bytes} bytes")

    def _not_found(self, path: str) -> HTTPProblem:
        if path.startswith("/v2/models/"):
            return HTTPProblem(
                404,
                ProblemKind.NOT_FOUND,
                f"no model at {path}: this server serves model {self.info.name!r} version {self.info.version!r}",
            )
        return HTTPProblem(404, ProblemKind.NOT_FOUND, f"no endpoint {path}; see /openapi.json")

    async def _send_problem(self, send: Send, problem: HTTPProblem) -> int:
        self.metrics.count_error(problem.kind)
        body = problem.body()
        body["error"] = redact(body["error"])
        return await send_json(send, problem.status, dumps(body), headers=problem.headers)

    def _not_ready(self) -> HTTPProblem:
        if self.init_error is not None:
            return HTTPProblem(503, ProblemKind.NOT_READY, "the model failed to initialise; see the server log")
        return HTTPProblem(503, ProblemKind.NOT_READY, "the model is still initialising (init() is running)")

    def _parse(self, body: bytes) -> Any:
        try:
            return loads(body)
        except JSONDecodeError as exc:
            raise HTTPProblem(400, ProblemKind.BAD_JSON, f"request body is not valid JSON: {exc}") from None

    def _logged(self, kind: ProblemKind, status: int, message: str, details: str, where: dict[str, Any]) -> HTTPProblem:
        """A 5xx answer whose body holds only an error id; `details` go to the log under that id."""
        error_id = new_error_id()
        log.error(redact(f"error_id={error_id} {details}"))
        return HTTPProblem(status, kind, f"{message} (error id {error_id})", extra={"error_id": error_id, **where})

    def _server_error(self, exc: BaseException, path: str) -> HTTPProblem:
        details = "".join(traceback.format_exception(exc))
        return self._logged(
            ProblemKind.SERVER_ERROR, 500, "the server failed on this request; see its log", f"{path}:\n{details}", {}
        )

    def _failure(self, exc: BaseException, path: str, record: int | None = None) -> HTTPProblem:
        """A score.py exception as an answer: 4xx for a request error (with its field), else 500 with an id."""
        status = request_error_status(exc)
        where = {} if record is None else {"record": record}
        if status is not None:
            field = getattr(exc, "field", None)
            return HTTPProblem(
                status,
                ProblemKind.INVALID_REQUEST,
                str(exc),
                field=field if isinstance(field, str) else None,
                extra=where,
            )
        details = "".join(traceback.format_exception(exc))
        return self._logged(
            ProblemKind.SCORE_ERROR,
            500,
            "score.py failed on this request",
            f"run() raised on {path}:\n{details}",
            where,
        )

    def _timed_out(self, path: str) -> HTTPProblem:
        return self._logged(
            ProblemKind.TIMEOUT,
            504,
            f"score.py did not answer within {self.timeout:g} s",
            f"run() on {path} did not answer within {self.timeout:g} s (it goes on running in its thread)",
            {},
        )

    async def _within_timeout(self, future: asyncio.Future[Any], path: str) -> Any:
        """The result of a call into score.py, or a 504 once it has taken longer than `timeout`."""
        expired = False

        def expire() -> None:
            nonlocal expired
            if not future.done():
                expired = True
                future.cancel()

        deadline = self.deadlines.add(self.timeout, expire)
        try:
            return await future
        except asyncio.CancelledError:
            if expired:
                raise self._timed_out(path) from None
            raise
        finally:
            self.deadlines.discard(deadline)

    def _encode(self, result: Any) -> bytes:
        try:
            return dumps(result)
        except TypeError as exc:
            raise self._failure(TypeError(f"run() returned a value that is not JSON: {exc}"), "encode") from None

    async def _score_records(self, records: list[Any], path: str) -> list[Any]:
        """Score several records in one call: run_batch() (with per-record fallback) or run() on each."""
        score = self.score
        assert score is not None  # noqa: S101 -- narrows for mypy: the app scores only once score.py is loaded
        if not records:
            return []
        texts = [dumps(record).decode() for record in records]
        policy = self.policy
        if self.batcher is not None:
            self.metrics.observe_batch(len(texts))
            execute: Callable[[list[Any]], list[Any]] = self.batcher.execute
        else:
            run = score.run

            def execute(items: list[Any]) -> list[Any]:
                return run_each(run, items)

        if policy.inline:
            outcomes = policy.call_inline(execute, texts)
        else:
            outcomes = await self._within_timeout(policy.submit(execute, texts), path)
        results = []
        for index, (ok, value) in enumerate(outcomes):
            if not ok:
                raise self._failure(value, path, index)
            results.append(value)
        self.metrics.observe_scored_many(records, results)
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
                if len(payload) > self.max_records:
                    raise too_many_records(len(payload), self.max_records, None)
                results = await self._score_records(payload, "/score")
                return await send_json(send, 200, self._encode(results))
            text = body.decode()
            if batcher is not None:
                future = batcher.submit(text)
                batcher = None
                try:
                    result = await self._within_timeout(future, "/score")
                except HTTPProblem:
                    if self.batcher is not None:
                        self.batcher.abandon(self.timeout)
                    raise
                except Exception as exc:  # turned into the answer
                    raise self._failure(exc, "/score") from None
            else:
                policy = self.policy
                score = self.score
                assert score is not None  # noqa: S101 -- narrows for mypy: the app scores only once score.py is loaded
                try:
                    if policy.inline:
                        result = policy.call_inline(score.run, text)
                    else:
                        result = await self._within_timeout(policy.submit(score.run, text), "/score")
                except HTTPProblem:
                    raise
                except Exception as exc:  # turned into the answer
                    raise self._failure(exc, "/score") from None
            self.metrics.observe_scored(payload, result)
            return await send_json(send, 200, self._encode(result))
        finally:
            if batcher is not None:
                batcher.leave()

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> int:
        body = await self._read_body(scope, receive)
        if not self.ready:
            raise self._not_ready()
        records = self._invocation_records(scope, body)
        results = await self._score_records(records, "/invocations")
        return await send_json(send, 200, self._encode({"predictions": results}))

    def _invocation_records(self, scope: Scope, body: bytes) -> list[Any]:
        """The records of an /invocations body, by its content type, as MLflow's scoring server reads them."""
        media, _, parameters = _content_type(scope).partition(";")
        media = media.strip().lower()
        if media in JSON_MEDIA or media.endswith("+json"):
            orient = next((p.split("=", 1)[1].strip() for p in parameters.split(";") if "format=" in p), None)
            if orient in ("pandas-split", "pandas-records"):
                return pandas_records(self._parse(body), orient, self.max_records)
            return mlflow_records(self._parse(body), self.max_records)
        if media == "text/csv":
            return csv_records(body, self.max_records)
        raise HTTPProblem(
            415,
            ProblemKind.UNSUPPORTED_MEDIA_TYPE,
            f"/invocations takes application/json (optionally format=pandas-split or pandas-records) or text/csv, "
            f"not {media}",
        )

    async def _v2_infer(self, scope: Scope, receive: Receive, send: Send) -> int:
        body = await self._read_body(scope, receive)
        if not self.ready:
            raise self._not_ready()
        payload = self._parse(body)
        records = v2_records(payload, self.max_records)
        results = await self._score_records(records, scope["path"])
        response = v2_response(self.info.name, self.info.version, payload.get("id"), results, payload.get("outputs"))
        return await send_json(send, 200, self._encode(response))

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> int:
        return await send_json(send, 200, dumps({"status": "live", "pid": os.getpid()}))

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> int:
        if not self.ready:
            raise self._not_ready()
        info = {
            "status": "ready",
            "model": self.info.name,
            "version": self.info.version,
            "package": self.info.digest,
            "pid": os.getpid(),
        }
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
        return await send_json(send, 200, self.metrics.render(), CONTENT_TYPE)

    async def _openapi_json(self, scope: Scope, receive: Receive, send: Send) -> int:
        document = self._openapi
        if document is None:
            example = self.score.example if self.score is not None else None
            document = dumps(build_openapi(self.info.name, self.info.version, example))
            if self.score is not None:
                self._openapi = document
        return await send_json(send, 200, document)


# What /invocations reads as JSON: JSON itself, and what clients send JSON as without saying so (curl -d).
JSON_MEDIA = ("", "application/json", "text/plain", "application/x-www-form-urlencoded")


def _content_type(scope: Scope) -> str:
    return (header(scope, b"content-type") or b"").decode("latin-1")


def create_app(package_dir: str | Path, **options: Unpack[AppOptions]) -> ScoringApp:
    """The ASGI app serving `package_dir` (see `ScoringApp` for the options)."""
    return ScoringApp(package_dir, **options)


__all__ = ["ScoringApp", "create_app"]
