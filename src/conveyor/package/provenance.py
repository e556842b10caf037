"""The provenance of a build as an in-toto Statement with an SLSA provenance v1 predicate
(https://slsa.dev/spec/v1.0/provenance).

Its subjects are the package digest (`package`) and, when there is an image, the image manifest digest (`image`).
`buildDefinition.externalParameters` says what was asked for (project, environment, model version, base image);
`resolvedDependencies` what it was made from: the source commit (`gitCommit`, with a `dirty` annotation), the
training data digest, the registered model version and its run, the requirements lock and the base image;
`runDetails.builder.id` names the principal that built and signed it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import conveyor
from conveyor.package.cache import sha256_file
from conveyor.package.manifest import PackageManifest
from conveyor.package.record import INPUTS_FILE, BuildRecord
from conveyor.trust import SLSA_PROVENANCE, Statement, Subject

BUILD_TYPE = "https://conveyor.dev/build/package/v1"
BUILDER_ID = "https://conveyor.dev/builder/"
PACKAGE_SUBJECT = "package"
IMAGE_SUBJECT = "image"


def build_subjects(record: BuildRecord, *, image: bool = True) -> tuple[Subject, ...]:
    """The artifacts of a build, by digest: its package and (when it has one and `image`) its image."""
    subjects = [Subject.sha256(PACKAGE_SUBJECT, record.digest)]
    if image and record.image is not None:
        subjects.append(Subject.sha256(IMAGE_SUBJECT, record.image.digest))
    return tuple(subjects)


def _image_inputs(record: BuildRecord) -> dict[str, Any]:
    path = record.dir / INPUTS_FILE
    if record.image is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _training(record: BuildRecord) -> dict[str, Any]:
    """How the model was trained, as its registration recorded it: the sandbox (`bwrap`, `none`, ...) and whether
    the source tree had uncommitted changes. A release policy refuses `none` and a dirty tree where it guards."""
    tags = record.model.tags if record.model else {}
    dirty = tags.get("git_dirty")
    return {"sandbox": tags.get("training_sandbox"), "gitDirty": None if dirty is None else dirty == "true"}


def _dependencies(record: BuildRecord, base_id: str | None) -> list[dict[str, Any]]:
    model = record.model
    tags = model.tags if model else {}
    found: list[dict[str, Any]] = []
    if tags.get("git_commit"):
        found.append(
            {
                "name": "source",
                "digest": {"gitCommit": tags["git_commit"]},
                "annotations": {"dirty": tags.get("git_dirty") == "true"},
            }
        )
    data = tags.get("data_digest", "")
    if data.startswith("sha256:"):
        found.append({"name": "training data", "digest": {"sha256": data.removeprefix("sha256:")}})
    if model:
        found.append(
            {
                "name": "model",
                "uri": f"models:/{model.name}/{model.version}",
                "annotations": {"run_id": model.run_id, "environment": record.env},
            }
        )
    lock = record.package_dir / "requirements.lock"
    if lock.is_file():
        found.append({"name": "requirements.lock", "digest": {"sha256": sha256_file(lock)}})
    if base_id and base_id.startswith("sha256:"):
        found.append({"name": "base image", "digest": {"sha256": base_id.removeprefix("sha256:")}})
    return found


def provenance_statement(record: BuildRecord, builder: str) -> Statement:
    """The SLSA provenance of `record`, read from its build folder (manifest, lock, image inputs) as built."""
    manifest = PackageManifest.read(record.package_dir).data
    inputs = _image_inputs(record)
    model = record.model
    external: dict[str, Any] = {
        "project": record.project,
        "environment": record.env,
        "model": {"name": model.name, "version": model.version, "run_id": model.run_id} if model else None,
        "baseImage": manifest.get("base_image"),
        "training": _training(record),
    }
    internal: dict[str, Any] = {"python": manifest.get("python"), "conveyor": manifest.get("conveyor")}
    if record.image is not None:
        internal["engine"] = record.image.engine
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": _dependencies(record, inputs.get("base_id")),
        },
        "runDetails": {
            "builder": {"id": BUILDER_ID + quote(builder, safe=""), "version": {"conveyor": conveyor.__version__}},
            "metadata": {
                "invocationId": record.digest,
                "startedOn": record.created_at,
                "finishedOn": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        },
    }
    return Statement(build_subjects(record), SLSA_PROVENANCE, predicate)
