"""What `conveyor serve` can serve, and `serve()`, the function behind it: a package directory, a registered
model (`models:/NAME/VERSION` or `models:/NAME@ALIAS`, materialised into a package directory) or an OCI image
(run by the container engine)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from conveyor.errors import ConveyorError
from conveyor.serving.loader import check_package_dir
from conveyor.serving.options import ServeOptions

if TYPE_CHECKING:
    from collections.abc import Callable

IMAGE_REFERENCE = re.compile(
    r"^(?:[a-z0-9.-]+(?::\d+)?/)?[a-z0-9._/-]+(?::[A-Za-z0-9_.-]{1,128})?(?:@sha256:[0-9a-f]{64})?$"
)
CACHE = Path.home() / ".cache" / "conveyor" / "serve"


@dataclass(frozen=True)
class ServeSource:
    """A resolved source: a package directory to serve in-process, or an image to run."""

    kind: Literal["package", "image"]
    spec: str
    package_dir: Path | None = None
    image: str | None = None


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or Path(spec).exists()


def resolve(spec: str, env: str | None = None, cache_dir: Path | None = None) -> ServeSource:
    """Turn `conveyor serve`'s argument into something servable.

    `models:/...` URIs are downloaded by `conveyor.registry.materialize(uri, env_name, dest)` into a package
    layout under `cache_dir` (default ~/.cache/conveyor/serve), then served like a package directory.
    """
    if spec.startswith("models:/"):
        return ServeSource("package", spec, package_dir=_materialize(spec, env, cache_dir or CACHE))
    if _looks_like_path(spec):
        return ServeSource("package", spec, package_dir=check_package_dir(Path(spec)))
    if IMAGE_REFERENCE.match(spec):
        return ServeSource("image", spec, image=spec)
    raise ConveyorError(
        f"cannot serve {spec!r}: it is not a package directory, a models:/ URI or an image reference",
        hint="Pass a directory built by `conveyor build`, models:/NAME/VERSION, models:/NAME@ALIAS, "
        "or an image such as localhost/census:abc123.",
    )


def _materialize(uri: str, env: str | None, cache_dir: Path) -> Path:
    if not re.match(r"^models:/[^/@]+(/[^/@]+|@[^/@]+)$", uri):
        raise ConveyorError(
            f"bad model URI {uri!r}", hint="Use models:/NAME/VERSION or models:/NAME@ALIAS (e.g. models:/census@prod)."
        )
    if env is None:
        raise ConveyorError(
            f"serving {uri} needs an environment to find its registry",
            hint="Pass --env dev|stage|prod (an environment of conveyor.toml).",
        )
    from conveyor.registry import materialize

    return check_package_dir(materialize(uri, env, cache_dir))


def serve(
    source: str,
    options: ServeOptions | None = None,
    *,
    env: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve `source` (a package directory, a models:/ URI of environment `env`'s registry, or an image) until
    stopped; `announce` is told what is served where, once it is resolved. With `env`, every value of that
    environment's secret store is masked in the server's output.

    Raises ConveyorError for a source that cannot be served, a busy port or a failed start (ScoreInitError when
    score.py's init() fails), and when an image's container exits with an error.
    """
    options = (options or ServeOptions()).check()
    say = announce or (lambda _message: None)
    if env is not None:  # score.py may print or raise with any of the environment's secrets, not only those read
        from conveyor.config import load_project

        load_project().environment(env).mask_every_secret()
    resolved = resolve(source, env)
    if resolved.kind == "image":
        from conveyor.serving.container import run_image

        assert resolved.image is not None  # noqa: S101 -- narrows for mypy: an image source names its image
        say(f"serving image {resolved.image} on http://{options.host}:{options.port}")
        code = run_image(resolved.image, options)
        if code not in (0, 130, 143):
            raise ConveyorError(
                f"the container of {resolved.image} exited with code {code}",
                hint="Its log is above; check that the image was built by `conveyor build`.",
            )
        return
    from conveyor.serving.server import run_server

    assert resolved.package_dir is not None  # noqa: S101 -- narrows for mypy: a package source names its folder
    say(f"serving {resolved.package_dir} on http://{options.host}:{options.port}")
    run_server(resolved.package_dir, options)
