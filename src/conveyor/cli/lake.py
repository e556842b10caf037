"""`conveyor lake ls|put|get`: look into and move files in and out of an environment's data lake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from conveyor.cli.options import EnvOption, JsonOption, ProjectOption, project_and_env
from conveyor.cli.output import emit_json, listing, plain, say, stdout

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
    json_output: JsonOption = False,
) -> None:
    """List what the lake holds under PATH."""
    lake = _lake(project, env)
    entries = [_entry(info) for info in lake.ls(path, detail=True)]
    if json_output:
        emit_json({"lake": lake.url, "path": lake.path(path), "entries": entries})
        return
    if not entries:
        say(f"{path or 'the lake'} is empty ({lake.url}); upload with: conveyor lake put FILE --env {lake.env}")
        return
    table = listing(f"{lake.env} lake: {lake.path(path) or '/'}", ["name", "type", "size"], whole=("type", "size"))
    table.columns[2].justify = "right"
    for entry in entries:
        size = "" if entry["type"] == "directory" or entry["size"] is None else str(entry["size"])
        table.add_row(plain(entry["name"]), entry["type"], size)
    stdout.print(table)


@app.command("put")
def put(
    local: Annotated[Path, typer.Argument(help="Local file or folder to upload.")],
    remote: Annotated[
        str | None, typer.Argument(help="Where in the lake (default: its name at the root; `dir/` puts it inside).")
    ] = None,
    env: EnvOption = None,
    project: ProjectOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files the lake already holds.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Upload LOCAL into the lake (the lab's "add initial data to storage" step).

    Refuses to replace a file the lake already holds unless --overwrite is given.
    """
    lake = _lake(project, env)
    written = lake.put(local, remote, overwrite=overwrite)
    if json_output:
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
    json_output: JsonOption = False,
) -> None:
    """Download REMOTE from the lake."""
    lake = _lake(project, env)
    written = lake.get(remote, local)
    if json_output:
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
