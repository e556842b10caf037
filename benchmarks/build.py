"""Build benchmark: `conveyor build` (cold and unchanged) against `mlflow models generate-dockerfile` built by the same
engine for the same model, with image sizes.

Run: .venv/bin/python benchmarks/build.py [--rows 500] [--skip-mlflow]

The MLflow Dockerfile downloads from the internet during the build; to build it here it is adapted, and the notes
under the table say exactly how. Both builds use offline wheels and base images made from the same Debian packages:
conveyor's serving runtime (Python, no shell) for conveyor, and a Debian system with python3, venv and a shell
(MLflow's Dockerfile runs shell commands) for MLflow, standing in for python:3.11-slim. Their sizes are printed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conveyor.cli.main import main as conveyor
from conveyor.config import load_project
from conveyor.package import build
from conveyor.package.baseimage import FULL, build_debian_base, ensure_base_image
from conveyor.package.cache import cache_dir
from conveyor.package.engine import find_engine
from conveyor.package.lock import pip_download, pip_platform_args


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def image_size(engine, reference: str) -> int:
    return int(engine.run("image", "inspect", "--format", "{{.Size}}", reference).stdout.strip())


def adapt_mlflow_dockerfile(text: str, base: str) -> tuple[str, list[str]]:
    """Make MLflow's Dockerfile build offline on `base`; returns the new text and what was changed."""
    notes = []
    text = re.sub(
        r"^FROM .*$",
        f"FROM {base}\nRUN python3 -m venv /opt/venv\nENV PATH=/opt/venv/bin:$PATH",
        text,
        count=1,
        flags=re.M,
    )
    notes.append(
        f"FROM python:3.11.x-slim -> FROM {base} + `python3 -m venv /opt/venv` on PATH "
        "(Debian with python3, venv and a shell, made by mmdebstrap)"
    )
    text = re.sub(r"^RUN apt-get -y update && apt-get install .*nginx.*$", "", text, flags=re.M)
    notes.append("dropped `apt-get install nginx` (no network in the build; nginx fronts MLflow's server)")
    mount = "--mount=type=bind,source=wheels,target=/wheels"
    text = text.replace("RUN pip install mlflow", f"RUN {mount} pip install --no-index --find-links /wheels mlflow")
    text = text.replace(
        'RUN python -c "from mlflow.models import container',
        f'RUN {mount} PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels python -c "from mlflow.models import container',
    )
    notes.append(
        "pip installs of mlflow and the model's requirements read wheels downloaded on the host "
        "(bind mount, PIP_NO_INDEX=1) instead of PyPI"
    )
    return text, notes


def mlflow_build(project_root: Path, engine, base: str) -> dict:
    registry = load_project(project_root).environment("dev").registry_uri
    work = Path(tempfile.mkdtemp(prefix="mlflow-docker-"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "generate-dockerfile",
            "-m",
            "models:/worst_regression/1",
            "-d",
            str(work),
            "--env-manager",
            "local",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    requirements = (work / "model_dir" / "requirements.txt").read_text()
    mlflow_pin = next(line for line in requirements.splitlines() if line.startswith("mlflow"))
    # MLflow's container installs the build tools the model was logged with (python_env.yaml) before its requirements
    python_env = (work / "model_dir" / "python_env.yaml").read_text()
    tools_block = python_env.split("build_dependencies:", 1)[-1].split("dependencies:", 1)[0]
    build_tools = re.findall(r"^- (\S+)$", tools_block, re.M)
    key = re.sub(r"\W", "_", "-".join([mlflow_pin, *build_tools]))
    wheels = cache_dir("bench", "mlflow-wheels", key + "-server")
    if not (wheels / ".complete").exists():
        pip_download([*pip_platform_args(), "--no-deps", *build_tools], wheels, "downloading MLflow's build tools")
        pip_download(
            [
                *pip_platform_args(),
                "-r",
                str(work / "model_dir" / "requirements.txt"),
                "pip",
                "gunicorn[gevent]",  # MLflow's container installs it for its server
                "wheel",
                "setuptools",
            ],
            wheels,
            "downloading the wheels of MLflow's image",
        )
        (wheels / ".complete").write_text("ok\n")
    subprocess.run(["cp", "-al", str(wheels), str(work / "wheels")], check=True)
    text, notes = adapt_mlflow_dockerfile((work / "Dockerfile").read_text(), base)
    (work / "Dockerfile").write_text(text)
    reference = "localhost/bench-mlflow:latest"
    engine.remove_image(reference)
    _, seconds = timed(
        engine.run, "build", "--no-cache", "-f", str(work / "Dockerfile"), "-t", reference, str(work), timeout=3600
    )
    size = image_size(engine, reference)
    engine.remove_image(reference)
    return {"seconds": seconds, "size": size, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args(argv)
    engine = find_engine(None)
    base = ensure_base_image(engine, None, print)
    full_base = build_debian_base(engine, recipe=FULL, progress=print)
    home = Path(tempfile.mkdtemp(prefix="bench-build-"))
    root = home / "census"
    assert (
        conveyor(
            [
                "init",
                str(root),
                "--secrets-dir",
                str(home / "s"),
                "--lakes-dir",
                str(home / "l"),
                "--rows",
                str(args.rows),
            ]
        )
        == 0
    )
    assert conveyor(["train", "--env", "dev", "--project", str(root)]) == 0
    project = load_project(root)
    environment = project.environment("dev")
    fresh_engine = dataclasses.replace(engine, build_flags=["--no-cache"])
    uncached, uncached_s = timed(build, project, environment, engine=fresh_engine)
    engine.remove_image(uncached.image.reference)
    shutil.rmtree(uncached.dir)
    (project.state_dir / "builds" / "index.json").unlink()
    cold, cold_s = timed(build, project, environment, engine=engine.name)
    warm, warm_s = timed(build, project, environment, engine=engine.name)
    assert warm.reused and warm.digest == cold.digest == uncached.digest
    started = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "conveyor"),
            "build",
            "--env",
            "dev",
            "-p",
            str(root),
            "--engine",
            engine.name,
        ],
        capture_output=True,
        check=True,
    )
    cli_warm_s = time.perf_counter() - started
    size = image_size(engine, cold.image.reference)
    archive = cold.image.archive.stat().st_size
    rows = [
        ("conveyor build, cold, engine --no-cache (base image, lock and wheel caches present)", uncached_s, size),
        ("conveyor build, cold, engine layer cache present (a new model version)", cold_s, size),
        ("conveyor build, unchanged (Python API)", warm_s, None),
        ("conveyor build, unchanged (CLI process, incl. interpreter start and imports)", cli_warm_s, None),
    ]
    mlflow = None if args.skip_mlflow else mlflow_build(root, engine, full_base)
    if mlflow:
        rows.append(
            (
                "mlflow models generate-dockerfile, then podman build --no-cache of it (build only)",
                mlflow["seconds"],
                mlflow["size"],
            )
        )
    engine.remove_image(cold.image.reference)
    print(f"\nengine: {engine.describe()}; {os.cpu_count()} cores")
    print(f"base images: conveyor {base} {image_size(engine, base) / 1e6:.0f} MB; ", end="")
    print(f"MLflow's {full_base} {image_size(engine, full_base) / 1e6:.0f} MB")
    print(f"{'what':<88} {'seconds':>8} {'image MB':>9}")
    for what, seconds, bytes_ in rows:
        print(f"{what:<88} {seconds:>8.3f} {(bytes_ / 1e6 if bytes_ else float('nan')):>9.0f}")
    print(f"conveyor image archive (image.oci.tar, layers compressed): {archive / 1e6:.0f} MB")
    if mlflow:
        print(
            f"ratios: mlflow/conveyor build time (both --no-cache) {mlflow['seconds'] / uncached_s:.2f}x, image size "
            f"{mlflow['size'] / size:.2f}x; unchanged conveyor build vs cold {cold_s / warm_s:.0f}x faster"
        )
        print(f"conveyor's image is {size / mlflow['size']:.0%} of MLflow's (the aim: at most a third)")
        print("notes on the MLflow build:")
        for note in mlflow["notes"]:
            print(f"  - {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
