"""The build's image in the container engine, loaded from its saved OCI archive when the engine lacks it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import CheckFailed

if TYPE_CHECKING:
    from collections.abc import Callable

    from conveyor.package.engine import ContainerEngine
    from conveyor.package.record import BuildRecord


def ensure_image(record: BuildRecord, engine: ContainerEngine, say: Callable[[str], None]) -> str:
    """The build's image reference, loaded into `engine` from the build's archive when it is not there (or is
    another image under the same name); refuses an archive or image that is not the recorded one."""
    from conveyor.package.image import read_oci_archive

    image = record.image
    if image is None:
        raise CheckFailed(f"build {record.short} has no image", hint="Rebuild with a container engine.")
    reference, recorded = image.reference, image.digest
    if engine.image_id(reference) != image.id:
        say(f"loading {reference} from {image.archive.name}")
        if read_oci_archive(image.archive).digest != recorded:
            raise CheckFailed(
                f"{image.archive} is not the image the build recorded ({recorded})",
                hint="Run `conveyor verify`, then rebuild.",
            )
        engine.load_oci_archive(image.archive, reference)
        if engine.image_id(reference) != image.id:
            raise CheckFailed(f"{reference} in {engine.name} is not the recorded image {image.id}")
    return reference
