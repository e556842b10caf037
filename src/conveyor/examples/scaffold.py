"""`conveyor init`: scaffold a project from an example, with a git repository and embedded-default stores."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.secrets.file import FileSecretStore

EXAMPLES = Path(__file__).parent
ENVIRONMENTS = ("dev", "stage", "prod")
DATA_FILE = "AdultCensusIncome.csv"
EVAL_FILE = "AdultCensusIncome-eval.csv"
PUBLIC_KEYS = frozenset({"alg-state", "created-by"})  # published by design as the state and created_by tags
SEEDS = {"dev": 11, "stage": 22, "prod": 33}
DEFAULT_PORTS = {"qa": 8701, "prod": 8702}
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.template")


@dataclass
class InitResult:
    root: Path
    secrets_dir: Path
    lakes: dict[str, Path] = field(default_factory=dict)
    created_secrets: list[Path] = field(default_factory=list)
    sealed: Path | None = None


def init_project(
    target: Path,
    *,
    example: str = "census",
    name: str | None = None,
    secrets_dir: Path | None = None,
    lakes_dir: Path | None = None,
    rows: int = 5000,
    git: bool = True,
    release_ports: dict[str, int] | None = None,
) -> InitResult:
    """Create a project at `target` from `example`, with secret files and sample data for dev, stage and prod.

    Existing secret files and lake files are never overwritten.
    """
    source = EXAMPLES / example
    if not source.is_dir() or example.startswith("_"):
        known = sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise ConveyorError(f"there is no example {example!r}", hint=f"Examples: {', '.join(known)}.")
    target = target.resolve()
    if target.exists() and any(target.iterdir()):
        raise ConveyorError(
            f"{target} already exists and is not empty", hint="Choose a new folder; conveyor init never overwrites."
        )
    name = name or target.name.lower().replace(" ", "-")
    home = Path(os.path.expanduser("~")) / ".conveyor"
    secrets_dir = (secrets_dir or home / "secrets" / name).resolve()
    sealed_dir = (home / "sealed" / name) if lakes_dir is None else lakes_dir.resolve().parent / "sealed"
    lakes_dir = (lakes_dir or home / "lakes" / name).resolve()

    shutil.copytree(source, target, ignore=COPY_IGNORE, dirs_exist_ok=True)
    template = (source / "conveyor.toml.template").read_text()
    text = template.replace("{name}", name).replace("{secrets_dir}", portable(secrets_dir))
    for stage, port in (release_ports or {}).items():
        text = text.replace(f'target = "local://{DEFAULT_PORTS[stage]}"', f'target = "local://{port}"')
    (target / "conveyor.toml").write_text(text)
    shutil.copyfile(source / "gitignore.template", target / ".gitignore")

    result = InitResult(root=target, secrets_dir=secrets_dir)
    user = os.environ.get("CONVEYOR_USER") or getpass.getuser()
    for env in ENVIRONMENTS:
        lake = lakes_dir / env
        result.lakes[env] = lake
        store = FileSecretStore(secrets_dir / f"{env}.toml")
        store.public_keys = PUBLIC_KEYS
        if not store.path.exists():
            values = {"datalake-fqdn": lake.as_uri(), "alg-state": env, "created-by": user}
            for key, value in values.items():
                store.set(key, value)
            result.created_secrets.append(store.path)
        write_sample_data(lake, env, rows)
    sealed = sealed_dir / EVAL_FILE
    result.sealed = sealed
    gates = FileSecretStore(secrets_dir / "gates.toml")
    if not gates.path.exists():
        gates.set("eval-data-url", sealed.as_uri())
        result.created_secrets.append(gates.path)
    write_sealed_set(sealed, rows)
    if git:
        _git_init(target)
    return result


def portable(path: Path) -> str:
    """`path` as written into the shared, committed conveyor.toml: `~/...` when it is under the home folder of
    whoever runs `conveyor init`, so the file names the same place for everyone who clones the project."""
    home = Path(os.path.expanduser("~")).resolve()
    try:
        return "~/" + path.resolve().relative_to(home).as_posix()
    except ValueError:
        return path.as_posix()


def write_sample_data(lake: Path, env: str, rows: int) -> None:
    """Different census data in each environment's lake."""
    from conveyor.examples.census_data import write_census_csv

    lake.mkdir(parents=True, exist_ok=True)
    if not (lake / DATA_FILE).exists():
        write_census_csv(lake / DATA_FILE, rows=rows, seed=SEEDS.get(env, 99))


def write_sealed_set(path: Path, rows: int) -> None:
    """The sealed evaluation set, beside the lakes and in none of them: only the gate store names it."""
    from conveyor.examples.census_data import write_census_csv

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_census_csv(path, rows=max(rows // 5, 200), seed=4242)


def _git_init(root: Path) -> None:
    if shutil.which("git") is None:
        return

    def git(*args: str) -> int:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, check=False).returncode

    git("init", "-q", "-b", "main")
    git("add", "-A")
    identity = ["-c", "user.name=conveyor", "-c", "user.email=conveyor@localhost"]
    has_identity = git("config", "user.email") == 0
    git(*([] if has_identity else identity), "commit", "-q", "-m", "Project from conveyor init")
