"""Installing a plug-in distribution from its source folder the way an installer lays it out on `sys.path`: its
modules, and a `.dist-info` whose `entry_points.txt` is what its pyproject.toml declares."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path


def install(source: Path, site: Path) -> Path:
    """Install the distribution in `source` (a pyproject.toml and its modules) into the folder `site`."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    site.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.name == "pyproject.toml" or path.name == "__pycache__":
            continue
        if path.is_dir():
            shutil.copytree(path, site / path.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, site / path.name)
    name = re.sub(r"[-_.]+", "_", project["name"]).lower()
    info = site / f"{name}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project.get("entry-points", {})
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()) + "\n"
            for group, points in groups.items()
        )
    )
    return info
