"""The SSH wire encoding (RFC 4251 §5) that keys and signatures are made of: uint32, string, mpint."""

from __future__ import annotations

import struct

from conveyor.trust.errors import MalformedSignature


def uint32(value: int) -> bytes:
    return struct.pack(">I", value)


def string(value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return uint32(len(data)) + data


def mpint(value: int) -> bytes:
    """A non-negative integer as an SSH mpint: big-endian, with a leading zero byte when the top bit is set."""
    if value == 0:
        return string(b"")
    data = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if data[0] & 0x80:
        data = b"\x00" + data
    return string(data)


class Reader:
    """Reads SSH wire values from `data` in order; any short or malformed read is a MalformedSignature."""

    def __init__(self, data: bytes, what: str = "SSH data") -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def _take(self, size: int) -> bytes:
        if size < 0 or self.offset + size > len(self.data):
            raise MalformedSignature(f"{self.what} is truncated")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def raw(self, size: int) -> bytes:
        return self._take(size)

    def uint32(self) -> int:
        value: int = struct.unpack(">I", self._take(4))[0]
        return value

    def string(self) -> bytes:
        return self._take(self.uint32())

    def text(self) -> str:
        try:
            return self.string().decode()
        except UnicodeDecodeError:
            raise MalformedSignature(f"{self.what} holds a name that is not UTF-8") from None

    def mpint(self) -> int:
        data = self.string()
        if data and data[0] & 0x80:
            raise MalformedSignature(f"{self.what} holds a negative integer")
        return int.from_bytes(data, "big")

    @property
    def done(self) -> bool:
        return self.offset == len(self.data)

    def end(self) -> None:
        if not self.done:
            raise MalformedSignature(f"{self.what} has {len(self.data) - self.offset} unexpected trailing bytes")
