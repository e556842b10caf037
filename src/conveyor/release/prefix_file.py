"""What this checkout verified of its ledger, kept between processes: a new `Ledger` starts from it and verifies
only the events appended since, as a kept Ledger object does within one process.

The store (`.conveyor/ledger-verified.db`, a SQLite file beside the seen head) holds the verifier as it stood
after event `seq` (whose hash is `digest`): the folded state and the allowed signers of each policy seen, without
the releases, and beside it one row per release, each written at the event it was last changed by (so keeping
the state again writes only the releases changed since, and a new process reads only those its work touches:
`conveyor.release.release_map`). Both are pickled, so each is authenticated before anything in it is read: an
HMAC-SHA256 under a key of this user's that never sits in the project (`$XDG_STATE_HOME/conveyor/ledger.key`,
else `~/.local/state/conveyor/ledger.key`, mode 0600), over the ledger URL, a digest of conveyor's release and
trust sources, and for a release its id and the event it was written at. A state without a valid MAC, written
for another ledger URL, or by other code is ignored, and the whole chain is walked as without it; a release row
that does not verify, or was written at another event than the kept state names, is taken from a walk instead.

What the store saves is the walk up to `seq`; what the ledger holds at and after `seq` is still checked by every
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
import sqlite3
import threading
import zlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from conveyor.release.audit import Verifier
    from conveyor.release.state import ReleaseState

FORMAT = 2
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

    def _connect(self, *, create: bool = False) -> sqlite3.Connection | None:
        if not create and not self.path.is_file():
            return None
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            if create:
                connection.executescript(SCHEMA)
        except sqlite3.Error:
            return None
        return connection

    def load(self) -> tuple[Verifier, int, str] | None:
        """The verifier kept after event `seq` (hash `digest`), or None when there is none that may be trusted.
        Its releases are read from this store when first asked for."""
        key = _key()
        connection = self._connect() if key is not None else None
        if connection is None or key is None:
            return None
        kept = self._head(connection, key)
        if kept is None:
            connection.close()
        return kept

    def _head(self, connection: sqlite3.Connection, key: bytes) -> tuple[Verifier, int, str] | None:
        try:
            found = connection.execute("SELECT mac, header, blob FROM head WHERE id = 1").fetchone()
        except sqlite3.Error:
            return None
        if found is None:
            return None
        mac, header, blob = found
        if not hmac.compare_digest(str(mac), _mac(key, header.encode(), blob)):
            return None
        try:
            meta = json.loads(header)
        except ValueError:
            return None
        code = code_digest()
        if meta.get("format") != FORMAT or meta.get("url") != self.url or meta.get("code") != code:
            return None
        try:
            verifier = pickle.loads(blob)  # noqa: S301 -- authenticated above with this user's key
        except Exception:  # a state that does not load is a state not kept
            return None
        verifier.state.releases.source = _KeptRows(connection, key, self.url, code)
        return verifier, int(meta["seq"]), str(meta["digest"])

    def seq(self) -> int | None:
        """The event the kept prefix ends at, read from the header alone (unauthenticated: for deciding when to
        write again, never for trusting)."""
        connection = self._connect()
        if connection is None:
            return None
        try:
            return _header_seq(connection)
        finally:
            connection.close()

    def store(self, verifier: Verifier, seq: int, digest: str) -> bool:
        """Keep the verifier as it stands after event `seq`, writing the releases changed since it was last kept;
        False when it could not be kept (nothing breaks). A store holding a later event is left as it is."""
        key = _key()
        connection = self._connect(create=True) if key is not None else None
        if connection is None or key is None:
            return False
        code = code_digest()
        releases = verifier.state.releases
        changed, undo = releases.keeping(seq)
        try:
            rows = [
                (i, seq, _release_mac(key, self.url, code, i, seq, blob), blob)
                for i, blob in ((i, _packed(r)) for i, r in changed.items())
            ]
            blob = pickle.dumps(verifier, protocol=pickle.HIGHEST_PROTOCOL)
            meta = {"format": FORMAT, "url": self.url, "code": code, "seq": seq, "digest": digest}
            header = json.dumps(meta, sort_keys=True)
            connection.execute("BEGIN IMMEDIATE")
            kept = _header_seq(connection)
            if kept is not None and kept >= seq:  # another process kept a later state meanwhile
                connection.execute("ROLLBACK")
                undo()
                return False
            connection.executemany("INSERT OR REPLACE INTO releases (id, version, mac, blob) VALUES (?, ?, ?, ?)", rows)
            connection.execute(
                "INSERT OR REPLACE INTO head (id, mac, header, blob) VALUES (1, ?, ?, ?)",
                (_mac(key, header.encode(), blob), header, blob),
            )
            connection.execute("COMMIT")
        except Exception:  # best effort: the next process walks the chain instead
            undo()
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return False
        finally:
            connection.close()
        return True

    def forget(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)


SCHEMA = """
CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), mac TEXT NOT NULL, header TEXT NOT NULL,
                                 blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS releases (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, mac TEXT NOT NULL,
                                     blob BLOB NOT NULL);
"""


def _header_seq(connection: sqlite3.Connection) -> int | None:
    try:
        found = connection.execute("SELECT header FROM head WHERE id = 1").fetchone()
        return None if found is None else int(json.loads(found[0])["seq"])
    except (sqlite3.Error, ValueError, KeyError, TypeError):
        return None


class _KeptRows:
    """The release rows of one kept state, read on demand (`conveyor.release.release_map.KeptReleases`)."""

    def __init__(self, connection: sqlite3.Connection, key: bytes, url: str, code: str) -> None:
        self.connection, self.key, self.url, self.code = connection, key, url, code
        self.lock = threading.Lock()

    def load(self, release_id: int, version: int) -> ReleaseState | None:
        with self.lock:
            try:
                found = self.connection.execute(
                    "SELECT version, mac, blob FROM releases WHERE id = ?", (release_id,)
                ).fetchone()
            except sqlite3.Error:
                return None
        return None if found is None else self._release(release_id, version, *found)

    def load_many(self, wanted: Mapping[int, int]) -> dict[int, ReleaseState]:
        with self.lock:
            try:
                rows = self.connection.execute("SELECT id, version, mac, blob FROM releases").fetchall()
            except sqlite3.Error:
                return {}
        found = {}
        for release_id, stored, mac, blob in rows:
            if release_id in wanted:
                release = self._release(release_id, wanted[release_id], stored, mac, blob)
                if release is None:
                    return {}
                found[release_id] = release
        return found

    def _release(self, release_id: int, version: int, stored: int, mac: str, blob: bytes) -> ReleaseState | None:
        if stored != version:
            return None
        if not hmac.compare_digest(str(mac), _release_mac(self.key, self.url, self.code, release_id, version, blob)):
            return None
        try:
            release = pickle.loads(zlib.decompress(blob))  # noqa: S301 -- authenticated above with this user's key
        except Exception:  # a row that does not load is a row not kept
            return None
        return release if getattr(release, "id", None) == release_id else None


def _packed(release: ReleaseState) -> bytes:
    """A release's row: pickled and deflated (a release is about 2.3 KB pickled, 1.3 KB deflated: three to a
    SQLite page, not one)."""
    return zlib.compress(pickle.dumps(release, protocol=pickle.HIGHEST_PROTOCOL), 1)


def _release_mac(key: bytes, url: str, code: str, release_id: int, version: int, blob: bytes) -> str:
    bound = f"{url}\0{code}\0release {release_id} at {version}\0".encode()
    return hmac.new(key, bound + blob, hashlib.sha256).hexdigest()


def _mac(key: bytes, header: bytes, blob: bytes) -> str:
    return hmac.new(key, header + b"\n" + blob, hashlib.sha256).hexdigest()
