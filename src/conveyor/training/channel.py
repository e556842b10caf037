"""The one channel between `conveyor train` and its training child: requests and answers over a socket pair.

A message is a 4-byte big-endian length, that many bytes of JSON (the header), then `header["size"]` bytes of
payload (file contents). The child asks, the parent answers; nothing else crosses, so everything the child gets
from outside its sandbox (lake bytes, declared secrets) passes one place that records it.
"""

from __future__ import annotations

import json
import struct
import threading
from typing import TYPE_CHECKING, Any

from conveyor.training.remote_errors import raise_if_error

if TYPE_CHECKING:
    import socket

HEADER = struct.Struct(">I")
MAX_HEADER = 16 << 20
FD_VARIABLE = "CONVEYOR_TRAINING_FD"


class ChannelClosed(ConnectionError):
    """The other side went away."""


def send(sock: socket.socket, header: dict[str, Any], payload: bytes = b"") -> None:
    data = json.dumps({**header, "size": len(payload)}).encode()
    sock.sendall(HEADER.pack(len(data)) + data + payload)


def _exactly(sock: socket.socket, count: int) -> bytes:
    chunks = []
    while count:
        chunk = sock.recv(min(count, 1 << 20))
        if not chunk:
            raise ChannelClosed("the training channel closed")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    (length,) = HEADER.unpack(_exactly(sock, HEADER.size))
    if length > MAX_HEADER:
        raise ChannelClosed(f"a message header of {length} bytes is not a training channel message")
    header = json.loads(_exactly(sock, length))
    if not isinstance(header, dict):
        raise ChannelClosed("a message header that is not a JSON object")
    size = int(header.pop("size", 0))
    return header, _exactly(sock, size) if size else b""


class Client:
    """The child's end: one request at a time (a lock serialises threads), each answered before the next; an
    error answered is raised as a `RemoteError` (see `conveyor.training.remote_errors`)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = threading.Lock()

    def request(self, op: str, payload: bytes = b"", **fields: Any) -> tuple[dict[str, Any], bytes]:
        with self._lock:
            send(self.sock, {"op": op, **fields}, payload)
            answer, data = receive(self.sock)
        raise_if_error(answer)
        return answer, data

    def close(self) -> None:
        self.sock.close()
