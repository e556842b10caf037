"""Small real OCI images and build records for release tests (a static busybox serving /health/ready)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar(files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755 if name.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def write_oci_archive(path: Path, label: str) -> tuple[str, str]:
    """An OCI archive whose image serves /health/ready and /release (= `label`) on 8080; returns (digest, id)."""
    layer = _tar(
        {
            "bin/busybox": BUSYBOX.read_bytes(),
            "www/health/ready": b"ready\n",
            "www/release": label.encode(),
        },
        dirs=("bin", "www", "www/health"),
    )
    compressed = gzip.compress(layer, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Cmd": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"],
                "ExposedPorts": {"8080/tcp": {}},
                "StopSignal": "SIGKILL",
                "Labels": {"conveyor.test": label},
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(compressed),
                    "size": len(compressed),
                }
            ],
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _digest(manifest),
                    "size": len(manifest),
                }
            ],
        }
    ).encode()
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": index}
    for blob in (config, manifest, compressed):
        files["blobs/sha256/" + _digest(blob)[7:]] = blob
    path.write_bytes(_tar(files))
    return _digest(manifest), _digest(config)


def tamper_layer(archive: Path) -> None:
    """Flip one byte inside the image's layer blob, keeping the archive a valid tar."""
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    largest = max(range(len(members)), key=lambda i: len(members[i][1]))
    info, content = members[largest]
    changed = bytearray(content)
    changed[len(changed) // 2] ^= 0xFF
    members[largest] = (info, bytes(changed))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data))
    archive.write_bytes(buffer.getvalue())


def write_build(
    project_root: Path,
    label: str,
    *,
    model_version: str | None = "1",
    tests_ok: bool | None = True,
    gates_ok: bool | None = True,
    env: str = "stage",
) -> Path:
    """A build record like `conveyor build` + `test` + `gate` leave it: package, package.tar, image archive."""
    work = project_root / ".conveyor" / "work" / label
    package = work / "package"
    (package / "model").mkdir(parents=True, exist_ok=True)
    (package / "score.py").write_text(f"def init():\n    pass\n\n\ndef run(raw):\n    return {{'label': {label!r}}}\n")
    (package / "model" / "model.pkl").write_bytes(label.encode() * 10)
    files = sorted(p for p in package.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {str(p.relative_to(package)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    (package / "manifest.json").write_text(json.dumps({"files": manifest}, sort_keys=True))
    archive = work / "package.tar"
    archive.write_bytes(
        _tar({str(p.relative_to(package)): p.read_bytes() for p in sorted(package.rglob("*")) if p.is_file()})
    )
    digest = _digest(archive.read_bytes())
    image_archive = work / "image.oci.tar"
    image_digest, image_id = write_oci_archive(image_archive, label)
    record = {
        "schema": 1,
        "project": "census",
        "env": env,
        "created_at": "2026-01-01T00:00:00Z",
        "created_by": "carol",
        "package": {"digest": digest, "dir": str(package), "archive": str(archive)},
        "model": {"name": "census_model", "version": model_version, "run_id": None, "tags": {}}
        if model_version
        else None,
        "image": {
            "engine": "podman",
            "reference": f"localhost/census:{digest[7:19]}",
            "id": image_id,
            "digest": image_digest,
            "archive": str(image_archive),
        },
        "tests": None
        if tests_ok is None
        else {
            "ok": tests_ok,
            "passed": 6 if tests_ok else 5,
            "failed": 0 if tests_ok else 1,
            "errors": 0,
            "skipped": 0,
        },
        "gates": None
        if gates_ok is None
        else {"ok": gates_ok, "results": [{"metric": "r2", "value": 0.1, "rule": ">= 0.0", "passed": gates_ok}]},
    }
    folder = project_root / ".conveyor" / "builds" / digest[7:]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "build.json").write_text(json.dumps(record, indent=2))
    return folder / "build.json"


def verify_fabricated_build(build_json: Path) -> None:
    """What the package check does, for these fabricated builds: every packaged byte and the archive digest."""
    from conveyor.errors import CheckFailed

    record = json.loads(Path(build_json).read_text())
    package = Path(record["package"]["dir"])
    listed = json.loads((package / "manifest.json").read_text())["files"]
    for name, expected in listed.items():
        if hashlib.sha256((package / name).read_bytes()).hexdigest() != expected:
            raise CheckFailed(f"package file {name} has changed since the build")
    if _digest(Path(record["package"]["archive"]).read_bytes()) != record["package"]["digest"]:
        raise CheckFailed("package archive has changed since the build")
