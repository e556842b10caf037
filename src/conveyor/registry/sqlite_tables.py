"""Reading an MLflow SQLite store's registry tables directly, read-only, with the standard library's sqlite3.

MLflow's client takes seconds to import and to open a store; these few SELECTs take milliseconds. They are run
only on a store whose Alembic revision (`alembic_version`) is one of `SUPPORTED_REVISIONS`, the revisions whose
tables this module was written against (the workspace-scoped layout MLflow introduced in revision 1b5f0d9ad7c1,
unchanged for the tables read here up to dc11669786a5). Any other revision, older or newer, is read by MLflow's
client instead: a newer MLflow may have moved things, and this module never guesses.

The answers are MLflow's: the single-tenant workspace (`default`), versions in MLflow's internal `Deleted_Internal`
stage left out, MLflow prompts (registered models tagged `mlflow.prompt.is_prompt = true`) left out, `NAME@latest`
as the highest version, a run's metrics as its latest values (NaN where MLflow stored NaN).
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from conveyor.errors import ConveyorError
from conveyor.registry.model_version import LATEST_ALIAS, PROMPT_TAG, ModelVersionInfo, newest_first
from conveyor.registry.reader import ReadPath

if TYPE_CHECKING:
    from collections.abc import Iterator

# MLflow's Alembic revisions whose registry and run tables have the layout read here, oldest first.
SUPPORTED_REVISIONS = (
    "1b5f0d9ad7c1",  # add_workspace_columns_and_catalog
    "e1f2a3b4c5d6",
    "76601a5f987d",
    "c3d6457b6d8a",
    "a5b4c3d2e1f0",
    "ae8bbe7743c9",
    "7d34483879f0",  # add_model_version_tags_workspace_index (an index only)
    "da6fb0208061",
    "89d3d66ed43f",
    "b7e4c1a90f23",
    "a8b9c0d1e2f3",
    "c1d2e3f4a5b6",
    "c3d9e7f1a2b4",
    "6f8d9c3b2a1e",
    "1971f2d9a75b",
    "17e22815139b",
    "b7e2c1a4d9f3",
    "75868b020152",
    "dc11669786a5",  # add_job_executor_persistence_model (MLflow 3.17)
    "e7d1f4b2a9c6",  # add_skill_registry_tables (new tables only)
    "8b6ad64cb8f5",  # extend_issue_contract (the issues tables only)
    "f4a9b2c7d1e6",  # make_mcp_versions_case_sensitive (MLflow 3.18; the MCP tables only)
)
WORKSPACE = "default"  # MLflow's single-tenant workspace
DELETED_STAGE = "Deleted_Internal"

VERSION_COLUMNS = "mv.name, mv.version, mv.creation_time, mv.source, mv.run_id"
# Model names MLflow's search leaves out: any version or the model itself tagged as a prompt.
NOT_A_PROMPT = f"""mv.name NOT IN (
    SELECT name FROM model_version_tags WHERE workspace = :ws AND key = '{PROMPT_TAG}' AND value = 'true'
)"""


def _revision_of(db: sqlite3.Connection) -> str | None:
    try:
        rows = db.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///relative` or `sqlite:////absolute` URI (None for in-memory ones)."""
    rest = uri.split(":", 1)[1]
    if not rest.startswith("///"):
        return None
    path = rest[3:].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


class SqliteTables:
    """An MLflow SQLite store, read through its tables (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.file = path
        self.path = ReadPath.SQLITE_TABLES
        self.reason = f"MLflow's tables in {path}, read directly"

    @contextmanager
    def _connect(self, *, checked: bool = True) -> Iterator[sqlite3.Connection]:
        """A read-only connection; `checked`: to a store still at a supported revision (it may be migrated at any
        time by another process)."""
        uri = f"file:{quote(str(self.file.resolve()))}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise ConveyorError(
                f"cannot open the MLflow store {self.file}: {exc}",
                hint="Check that the file is an MLflow SQLite database you can read.",
            ) from None
        with closing(connection):
            if checked:
                revision = _revision_of(connection)
                if revision not in SUPPORTED_REVISIONS:
                    raise ConveyorError(
                        f"the MLflow store {self.file} changed to schema revision {revision!r} while it was read",
                        hint="Run the command again: a store at that revision is read with MLflow's client.",
                    )
            yield connection

    def revision(self) -> str | None:
        """The store's Alembic revision (None when it has none: not an MLflow store, or not set up yet)."""
        with self._connect(checked=False) as db:
            return _revision_of(db)

    def model_names(self) -> list[str]:
        query = f"""
            SELECT name FROM registered_models
            WHERE workspace = :ws AND name NOT IN (
                SELECT name FROM registered_model_tags WHERE workspace = :ws AND key = '{PROMPT_TAG}' AND value = 'true'
            )"""
        with self._connect() as db:
            return sorted(str(row[0]) for row in db.execute(query, {"ws": WORKSPACE}))

    def versions(self, name: str) -> list[ModelVersionInfo]:
        query = f"""
            SELECT {VERSION_COLUMNS} FROM model_versions mv
            WHERE mv.workspace = :ws AND mv.name = :name AND mv.current_stage != '{DELETED_STAGE}'
            AND {NOT_A_PROMPT}"""
        with self._connect() as db:
            rows = db.execute(query, {"ws": WORKSPACE, "name": name}).fetchall()
            return newest_first(self._described(db, name, rows))

    def version(self, name: str, version: str) -> ModelVersionInfo | None:
        if not version.isdigit():
            return None
        query = f"""
            SELECT {VERSION_COLUMNS} FROM model_versions mv
            WHERE mv.workspace = :ws AND mv.name = :name AND mv.version = :version
            AND mv.current_stage != '{DELETED_STAGE}'"""
        with self._connect() as db:
            rows = db.execute(query, {"ws": WORKSPACE, "name": name, "version": int(version)}).fetchall()
            found = self._described(db, name, rows)
        if not found or PROMPT_TAG in found[0].tags:  # MLflow's client refuses a prompt's version
            return None
        return found[0]

    def version_by_alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        if alias.lower() == LATEST_ALIAS:
            everything = self._all_versions(name)
            newest = max(everything, key=lambda v: int(v.version)) if everything else None
            return None if newest is None or PROMPT_TAG in newest.tags else newest
        query = "SELECT version FROM registered_model_aliases WHERE workspace = :ws AND name = :name AND alias = :alias"
        with self._connect() as db:
            row = db.execute(query, {"ws": WORKSPACE, "name": name, "alias": alias}).fetchone()
        return self.version(name, str(row[0])) if row else None

    def _all_versions(self, name: str) -> list[ModelVersionInfo]:
        """Every live version of `name`, prompts included (what MLflow's `get_latest_versions` looks at)."""
        query = f"""
            SELECT {VERSION_COLUMNS} FROM model_versions mv
            WHERE mv.workspace = :ws AND mv.name = :name AND mv.current_stage != '{DELETED_STAGE}'"""
        with self._connect() as db:
            return self._described(db, name, db.execute(query, {"ws": WORKSPACE, "name": name}).fetchall())

    def run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        with self._connect() as db:
            metrics = {
                str(key): math.nan if is_nan else float(value)
                for key, value, is_nan in db.execute(
                    "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,)
                )
            }
            rows = db.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))
            params = {str(key): str(value) for key, value in rows}
        return metrics, params

    def _described(self, db: sqlite3.Connection, name: str, rows: list[tuple[object, ...]]) -> list[ModelVersionInfo]:
        """Rows of `model_versions` (VERSION_COLUMNS) of model `name`, with their tags and aliases."""
        if not rows:
            return []
        tags: dict[int, dict[str, str]] = defaultdict(dict)
        for version, key, value in db.execute(
            "SELECT version, key, value FROM model_version_tags WHERE workspace = :ws AND name = :name",
            {"ws": WORKSPACE, "name": name},
        ):
            tags[int(version)][str(key)] = "" if value is None else str(value)
        aliases: dict[int, list[str]] = defaultdict(list)
        for alias, version in db.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE workspace = :ws AND name = :name",
            {"ws": WORKSPACE, "name": name},
        ):
            aliases[int(version)].append(str(alias))
        return [
            ModelVersionInfo(
                name=str(row_name),
                version=str(version),
                run_id=str(run_id) if run_id else None,
                source=str(source or ""),
                created_at=int(str(created or 0)),
                tags=tags[int(str(version))],
                aliases=tuple(sorted(aliases[int(str(version))])),
            )
            for row_name, version, created, source, run_id in rows
        ]
