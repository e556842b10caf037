"""What this checkout verified of its ledger, kept between processes: a new `Ledger` starts from it and verifies
only the events appended since, as a kept Ledger object does within one process.

The file (`.conveyor/ledger-verified`, beside the seen head) holds the verifier as it stood after event `seq`
(whose hash is `digest`): the folded state and the allowed signers of each policy seen. It is pickled, so it is
authenticated before anything in it is read: an HMAC-SHA256 under a key of this user's that never sits in the
project (`$XDG_STATE_HOME/conveyor/ledger.key`, else `~/.local/state/conveyor/ledger.key`, mode 0600). A file
without a valid MAC, written for another ledger URL, or by other code (a digest of conveyor's release and trust
sources) is ignored, and the whole chain is walked as without it.

What the file saves is the walk up to `seq`; what the ledger holds at and after `seq` is still checked by every
reader (the stored hash at `seq`, the checkpoints, each new event, the releases the new events touch). An older
event edited in the database without its hash is found by `conveyor audit verify`, which always walks the whole
chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import secrets
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.release.audit import Verifier

FORMAT = 1
KEY_ENV = "XDG_STATE_HOME"


def key_path() -> Path:
    base = os.environ.get(KEY_ENV)
    return (Path(base) if base else Path.home() / ".local" / "state") / "conveyor" / "ledger.key"


def _key() -> bytes | None:
    """This user's key (made on first use, mode 0600); None when it cannot be read or made."""
    path = key_path()
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return _key_read(path)
    except OSError:
        return None
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    return _key_read(path)


def _key_read(path: Path) -> bytes | None:
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        return None


@cache
def code_digest() -> str:
    """A digest of the sources whose classes the file pickles: a file written by other code is not read."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for package in ("release", "trust"):
        for source in sorted((root / package).rglob("*.py")):
            digest.update(source.relative_to(root).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


class PrefixFile:
    """The verified prefix of one ledger (by URL), as this checkout last kept it."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url

    def load(self) -> tuple[Verifier, int, str] | None:
        """The verifier kept after event `seq` (hash `digest`), or None when there is none that may be trusted."""
        key = _key()
        try:
            mac, header, blob = self.path.read_bytes().split(b"\n", 2)
        except (OSError, ValueError):
            return None
        if key is None or not hmac.compare_digest(mac, _mac(key, header, blob).encode()):
            return None
        try:
            meta = json.loads(header)
        except ValueError:
            return None
        if meta.get("format") != FORMAT or meta.get("url") != self.url or meta.get("code") != code_digest():
            return None
        try:
            verifier = pickle.loads(blob)  # noqa: S301 -- authenticated above with this user's key
        except Exception:  # a file that does not load is a file not kept
            return None
        return verifier, int(meta["seq"]), str(meta["digest"])

    def seq(self) -> int | None:
        """The event the kept prefix ends at, read from the header alone (unauthenticated: for deciding when to
        write again, never for trusting)."""
        try:
            with self.path.open("rb") as kept:
                kept.readline()
                return int(json.loads(kept.readline())["seq"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def store(self, verifier: Verifier, seq: int, digest: str) -> bool:
        """Keep the verifier as it stands after event `seq`; False when it could not be kept (nothing breaks)."""
        key = _key()
        if key is None:
            return False
        try:
            blob = pickle.dumps(verifier, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # best effort: the next process walks the chain instead
            return False
        meta = {"format": FORMAT, "url": self.url, "code": code_digest(), "seq": seq, "digest": digest}
        header = json.dumps(meta, sort_keys=True).encode()
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(_mac(key, header, blob).encode() + b"\n" + header + b"\n" + blob)
            partial.replace(self.path)
        except OSError:
            partial.unlink(missing_ok=True)
            return False
        return True

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)


def _mac(key: bytes, header: bytes, blob: bytes) -> str:
    return hmac.new(key, header + b"\n" + blob, hashlib.sha256).hexdigest()
