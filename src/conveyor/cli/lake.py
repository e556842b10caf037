"""`conveyor lake ls|put|get`: look into and move files in and out of an environment's data lake."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.options import EnvOption, JsonOption, ProjectOption, project_and_env
from conveyor.cli.output import emit_json, listing, plain, say, show_listing, stdout

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="List, upload and download files in an environment's data lake.", no_args_is_help=True)


def _lake(project: Path | None, env: str | None) -> Any:
    _, environment = project_and_env(project, env)
    lake = environment.lake()
    lake.env = lake.env or environment.name
    return lake


def _entry(info: dict[str, Any]) -> dict[str, Any]:
    return {"name": info["name"], "type": info.get("type", "file"), "size": info.get("size")}


@app.command("ls")
def ls(
    path: Annotated[str, typer.Argument(help="Folder or file inside the lake (default: its root).")] = "",
    env: EnvOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """List what the lake holds under PATH."""
    lake = _lake(project, env)
    entries = [_entry(info) for info in lake.ls(path, detail=True)]

    def table() -> Table:
        made = listing(f"{lake.env} lake: {lake.path(path) or '/'}", ["name", "type", "size"], whole=("type", "size"))
        made.columns[2].justify = "right"
        for entry in entries:
            size = "" if entry["type"] == "directory" or entry["size"] is None else str(entry["size"])
            made.add_row(plain(entry["name"]), entry["type"], size)
        return made

    data = {"lake": lake.url, "path": lake.path(path), "entries": entries}
    empty = f"{path or 'the lake'} is empty ({lake.url}); upload with: conveyor lake put FILE --env {lake.env}"
    show_listing(data, entries, empty, table, as_json=as_json)


@app.command("put")
def put(
    local: Annotated[Path, typer.Argument(help="Local file or folder to upload.")],
    remote: Annotated[
        str | None, typer.Argument(help="Where in the lake (default: its name at the root; `dir/` puts it inside).")
    ] = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files the lake already holds.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Upload LOCAL into the lake (the lab's "add initial data to storage" step).

    Refuses to replace a file the lake already holds unless --overwrite is given.
    """
    lake = _lake(project, env)
    written = lake.put(local, remote, overwrite=overwrite)
    if as_json:
        emit_json({"lake": lake.url, "written": written})
        return
    for name in written:
        stdout.print(plain(name))
    say(f"uploaded {len(written)} file(s) from {local} to the {lake.env} lake")


@app.command("get")
def get(
    remote: Annotated[str, typer.Argument(help="File or folder in the lake.")],
    local: Annotated[Path | None, typer.Argument(help="Where to save it (default: its name here).")] = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download REMOTE from the lake."""
    lake = _lake(project, env)
    written = lake.get(remote, local)
    if as_json:
        emit_json(
            {
                "lake": lake.url,
                "written": [str(p) for p in written],
                "reads": [{"path": r.path, "sha256": r.sha256} for r in lake.reads()],
            }
        )
        return
    for path in written:
        stdout.print(plain(path))
    say(f"downloaded {len(written)} file(s) from the {lake.env} lake")
