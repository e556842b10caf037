"""Where a lake URL points: the scheme, the backend's root path, and how to spell a full URL back."""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from conveyor.errors import LakeError

SCHEMES = ("file", "abfss", "abfs", "az", "s3")
ACCEPTED = "file://PATH, abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH, az://CONTAINER/PATH, s3://BUCKET/PATH"


@dataclass(frozen=True)
class LakeLocation:
    """A parsed lake URL.

    `root` is the root in the backend filesystem's own spelling (an absolute directory for `file`,
    `CONTAINER/PATH` for Azure, `BUCKET/PATH` for S3); `url_prefix` + `/` + a lake path is that path's full URL.
    """

    url: str
    scheme: str
    root: str
    url_prefix: str
    account: str | None = None

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def kind(self) -> str:
        """The backend: `file`, `azure` or `s3`."""
        return {"abfss": "azure", "abfs": "azure", "az": "azure"}.get(self.scheme, self.scheme)

    def url_of(self, path: str) -> str:
        return f"{self.url_prefix}/{path}" if path else self.url_prefix


def parse_lake_url(url: str, project_root: Path) -> LakeLocation:
    """Parse `url` into a `LakeLocation`, or raise `LakeError` naming the URL and the accepted schemes."""
    if not url or "://" not in url:
        raise LakeError(f"lake URL {url!r} has no scheme", hint=f"Accepted lake URLs: {ACCEPTED}")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise LakeError(
            f"lake URL {url!r} has scheme {scheme + '://'!r}, which conveyor cannot open",
            hint=f"Accepted lake URLs: {ACCEPTED}",
        )
    if scheme == "file":
        return _local(url, rest, project_root)
    parts = urlsplit(url)
    netloc, path = parts.netloc, parts.path.strip("/")
    if not netloc:
        raise LakeError(f"lake URL {url!r} names no bucket or container", hint=f"Accepted lake URLs: {ACCEPTED}")
    if scheme == "s3":
        root = posixpath.join(netloc, path) if path else netloc
        return LakeLocation(url, scheme, root, f"s3://{root}")
    container, _, host = netloc.partition("@")
    account = host.split(".", 1)[0] if host else None
    if scheme in ("abfss", "abfs") and not account:
        raise LakeError(
            f"lake URL {url!r} names no storage account",
            hint="Write it as abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH",
        )
    root = posixpath.join(container, path) if path else container
    prefix = f"{scheme}://{netloc}/{path}" if path else f"{scheme}://{netloc}"
    return LakeLocation(url, scheme, root, prefix, account)


def _local(url: str, rest: str, project_root: Path) -> LakeLocation:
    if rest.startswith("localhost/"):
        rest = rest[len("localhost") :]
    path = Path(os.path.expanduser(rest))
    if not path.is_absolute():
        path = project_root / path
    root = os.path.normpath(os.path.abspath(path))
    return LakeLocation(url, "file", root, f"file://{root}")
