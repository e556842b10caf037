"""The parent's side of a training run: it holds the environment (store, lake credentials, registry) and answers
the child's requests, recording every lake read for lineage and every metric, param and model to register.

The child never holds a store, a credential or the lake's inner filesystem: whatever it learns of the lake, it
learns here, so a read that is not recorded cannot happen through conveyor (and, in the sandbox, not at all).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from conveyor.errors import ConveyorError, SecretError
from conveyor.secrets.redaction import redact
from conveyor.training.channel import ChannelClosed, receive, send
from conveyor.training.remote_errors import encode_error

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from conveyor.lake import Lake
    from conveyor.training.settings import RunSettings

READ_LIMIT = 64 << 20  # the most one answer carries; the child reads large files in ranges


@dataclass
class PendingRegistration:
    """A model the script asked to register; registered when the script ends well."""

    path: Path
    name: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RunRecord:
    """What the script logged and asked for, collected as it ran."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, timestamp ms, step
    tags: dict[str, str] = field(default_factory=dict)
    registrations: list[PendingRegistration] = field(default_factory=list)

    def latest_metrics(self) -> dict[str, float]:
        return {key: value for key, value, _, _ in sorted(self.metrics, key=lambda m: (m[2], m[3]))}


class TrainingBroker:
    """Answers one training child over `sock` until it closes; `record` and the lake's read log hold the outcome."""

    def __init__(
        self,
        sock: socket.socket,
        settings: RunSettings,
        lake: Callable[[], Lake],
        secret: Callable[[str], str],
        run_dir: Path,
        spark_settings: Callable[[], dict[str, str]] | None = None,
        public_keys: frozenset[str] = frozenset(),
    ) -> None:
        self.sock = sock
        self.settings = settings
        self._open_lake = lake
        self._lake: Lake | None = None
        self._secret = secret
        self.run_dir = run_dir.resolve()
        self._spark_settings = spark_settings
        self._public_keys = public_keys
        self.record = RunRecord()
        self._writers: dict[int, IO[bytes]] = {}
        self._thread = threading.Thread(target=self._serve, name="conveyor-training-broker", daemon=True)

    @property
    def lake(self) -> Lake:
        if self._lake is None:
            self._lake = self._open_lake()
        return self._lake

    @property
    def lake_was_used(self) -> bool:
        return self._lake is not None

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def _serve(self) -> None:
        while True:
            try:
                request, payload = receive(self.sock)
            except (ChannelClosed, OSError, ValueError):
                return
            try:
                answer, data = self.answer(request, payload)
            except Exception as error:  # every failure goes back to the child as its own error
                answer, data = encode_error(error, redact), b""
            try:
                send(self.sock, answer, data)
            except OSError:
                return

    def answer(self, request: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        op = str(request.get("op", ""))
        handler = getattr(self, "op_" + op.replace(".", "_"), None)
        if handler is None:
            raise ConveyorError(f"the training channel has no operation {op!r}")
        result = handler(request, payload)
        return result if isinstance(result, tuple) else (result, b"")

    # -- the run -------------------------------------------------------------------------------------------

    def op_hello(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        return {"settings": self.settings.to_dict()}

    def op_secret(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        key = str(request["key"])
        if key not in self.settings.declared_secrets:
            declared = ", ".join(self.settings.declared_secrets) or "none"
            raise SecretError(
                f"ctx.secret({key!r}): the project does not declare {key!r} for training (declared: {declared})",
                hint=f'Add it to [training] secrets in conveyor.toml, e.g. secrets = ["{key}"].',
            )
        return {"value": self._secret(key), "public": key in self._public_keys}

    def op_log_params(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        for key, value in dict(request["params"]).items():
            text = str(value)
            if self.record.params.get(str(key), text) != text:
                raise ConveyorError(
                    f"param {key!r} was already logged with another value", hint="Params are logged once per run."
                )
            self.record.params[str(key)] = text
        return {}

    def op_log_metrics(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        stamp = int(request.get("timestamp") or time.time() * 1000)
        step = int(request.get("step") or 0)
        for key, value in dict(request["metrics"]).items():
            self.record.metrics.append((str(key), float(value), stamp, step))
        return {}

    def op_set_tags(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        self.record.tags.update({str(k): str(v) for k, v in dict(request["tags"]).items()})
        return {}

    def op_register(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        folder = Path(str(request["path"])).resolve()
        if folder != self.run_dir and self.run_dir not in folder.parents:
            raise ConveyorError(
                f"register_model: {request['path']} is not inside this run's folders",
                hint="Write the model files into ctx.output_dir, then call ctx.register_model(ctx.output_dir, NAME).",
            )
        links = [p for p in folder.rglob("*") if p.is_symlink()]
        if links:
            raise ConveyorError(
                f"register_model: {folder} holds a symbolic link ({links[0].relative_to(folder)})",
                hint="Write the model's files themselves into ctx.output_dir, not links to files elsewhere.",
            )
        if not folder.is_dir() or not any(folder.iterdir()):
            raise ConveyorError(
                f"register_model: {folder} is not a folder with model files in it",
                hint="Write the model files into ctx.output_dir, then call ctx.register_model(ctx.output_dir, NAME).",
            )
        tags = {str(k): str(v) for k, v in dict(request.get("tags") or {}).items()}
        self.record.registrations.append(PendingRegistration(folder, str(request["name"]), tags))
        return {}

    def op_spark_settings(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        return {"settings": self._spark_settings() if self._spark_settings else {}}

    # -- the lake ------------------------------------------------------------------------------------------

    def op_lake_info(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        return {"info": _plain(self.lake.info(request["path"]))}

    def op_lake_ls(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        return {"entries": _plain(self.lake.ls(request["path"], detail=bool(request.get("detail"))))}

    def op_lake_find(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        return {"names": self.lake.find(request["path"])}

    def op_lake_exists(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        return {"exists": self.lake.exists(request["path"])}

    def op_lake_read(self, request: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        """Bytes [start, end) of a lake file; the file is recorded as read (its whole sha256 goes into lineage)."""
        path = self.lake.path(request["path"])
        start = int(request.get("start") or 0)
        end = request.get("end")
        end = start + READ_LIMIT if end is None else min(int(end), start + READ_LIMIT)
        data = self.lake.fs.cat_file(path, start=start, end=end)
        self.lake.fs.read_log.opened(path)
        return {}, data

    def op_lake_open_write(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        path = self.lake.path(request["path"])
        if not request.get("overwrite", True) and self.lake.exists(path):
            lake = f"the {self.settings.env} lake"
            raise FileExistsError(f"{path!r} already exists in {lake}")
        writer = self.lake.fs.open(path, "wb")
        handle = id(writer)
        self._writers[handle] = writer
        return {"handle": handle}

    def op_lake_write(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        self._writers[int(request["handle"])].write(payload)
        return {}

    def op_lake_close_write(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        self._writers.pop(int(request["handle"])).close()
        return {}

    def op_lake_rm(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        self.lake.fs.rm(self.lake.path(request["path"]), recursive=bool(request.get("recursive")))
        return {}

    def op_lake_mkdir(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        self.lake.fs.makedirs(self.lake.path(request["path"]), exist_ok=True)
        return {}

    def op_lake_spark_url(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        """A lake path's URL for Spark to read (s3a://, abfss://), every file it names recorded as read."""
        self.lake.record_read(request["path"])
        return {"url": self.lake.hadoop_url_of(request["path"])}

    def op_lake_reads(self, request: dict[str, Any], payload: bytes) -> dict[str, Any]:
        if not self.lake_was_used:
            return {"reads": [], "digest": None}
        reads = self.lake.reads()
        return {"reads": [[r.path, r.sha256] for r in reads], "digest": self.lake.data_digest()}


def _plain(value: Any) -> Any:
    """JSON-safe: dates and other objects in fsspec info dicts become text."""
    return json.loads(json.dumps(value, default=str))


def run_folders(run_dir: Path) -> dict[str, Path]:
    """The folders of one training run, all inside `run_dir` (the one folder the child may write): the model
    output, a temp folder, a home, and a scratch MLflow store (made by MLflow on first use)."""
    folders = {name: run_dir / name for name in ("model", "tmp", "home", "mlruns")}
    os.chmod(run_dir, 0o700)
    for name in ("model", "tmp", "home"):
        folders[name].mkdir(exist_ok=True)
    return folders
