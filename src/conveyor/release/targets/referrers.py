"""Attestations pushed beside an image as OCI referrers (OCI distribution spec 1.1), over the registry's HTTP API.

Each DSSE envelope becomes an artifact manifest whose `subject` is the image manifest. A registry that serves the
referrers API indexes it itself (it answers with `OCI-Subject`); for one that does not (distribution 2.x), the
spec's fallback is kept too: an image index tagged `sha256-<hex of the image digest>` listing the referrers.
Manifests are built deterministically, so pushing again after a resumed deployment changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from conveyor.errors import CheckFailed

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_BYTES = b"{}"
DSSE = "application/vnd.dsse.envelope.v1+json"
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
ACCEPT = ", ".join((MANIFEST, INDEX, "application/vnd.docker.distribution.manifest.v2+json"))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Envelope:
    """One attestation to attach: its bytes and the in-toto predicate type it carries."""

    data: bytes
    predicate_type: str


def _auth_files() -> list[Path]:
    """Where podman, skopeo and docker keep registry credentials, in the order they read them."""
    found = [os.environ.get("REGISTRY_AUTH_FILE", "")]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        found.append(f"{runtime}/containers/auth.json")
    found += [str(Path.home() / ".config/containers/auth.json"), str(Path.home() / ".docker/config.json")]
    return [Path(p) for p in found if p]


def registry_credentials(host: str) -> tuple[str, str] | None:
    """(user, password) for `host` from the container tools' auth files, if one has it."""
    for path in _auth_files():
        try:
            auths = json.loads(path.read_text()).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        for name, entry in auths.items():
            if name.removeprefix("https://").removeprefix("http://").rstrip("/") == host and entry.get("auth"):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                return user, password
    return None


class Distribution:
    """A small client of one repository of an OCI registry: blobs, manifests, tags (anonymous, basic or bearer)."""

    def __init__(self, host: str, repo: str, *, insecure: bool) -> None:
        self.host, self.repo, self.insecure = host, repo, insecure
        self.client = httpx.Client(verify=not insecure, timeout=60, follow_redirects=True)
        self.base = f"https://{host}/v2/{repo}"
        self._token: str | None = None
        self._scheme_known = not insecure

    def close(self) -> None:
        self.client.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self._token:
            headers["Authorization"] = self._token
        try:
            response = self.client.request(method, url, headers=headers, **kwargs)
        except httpx.ConnectError:
            if self._scheme_known:
                raise
            self.base = self.base.replace("https://", "http://", 1)  # as skopeo does for an insecure registry
            self._scheme_known = True
            return self._request(method, url.replace("https://", "http://", 1), headers=headers, **kwargs)
        self._scheme_known = True
        if response.status_code == 401 and self._authenticate(response):
            headers["Authorization"] = self._token or ""
            response = self.client.request(method, url, headers=headers, **kwargs)
        return response

    def _authenticate(self, challenge: httpx.Response) -> bool:
        header = challenge.headers.get("WWW-Authenticate", "")
        credentials = registry_credentials(self.host)
        kind, _, rest = header.partition(" ")
        if kind.lower() == "basic" and credentials:
            self._token = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
            return True
        if kind.lower() != "bearer":
            return False
        params = dict(
            part.strip().split("=", 1) for part in rest.split(",") if "=" in part
        )  # realm="…",service="…",scope="…"
        params = {k: v.strip('"') for k, v in params.items()}
        realm = params.pop("realm", None)
        if not realm:
            return False
        params.setdefault("scope", f"repository:{self.repo}:pull,push")
        answer = self.client.get(realm, params=params, auth=credentials)
        if answer.status_code != 200:
            return False
        body = answer.json()
        self._token = "Bearer " + str(body.get("token") or body.get("access_token"))
        return True

    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code >= 400:
            raise CheckFailed(
                f"could not {what} at {self.host}/{self.repo}: HTTP {response.status_code} {response.text[:200]}",
                hint="Check that the registry is reachable and that your credentials may push there "
                "(podman login / skopeo login).",
            )
        return response

    def manifest(self, reference: str) -> tuple[bytes, str] | None:
        """The manifest bytes and media type at a tag or digest, or None when there is none."""
        response = self._request("GET", f"{self.base}/manifests/{reference}", headers={"Accept": ACCEPT})
        if response.status_code == 404:
            return None
        self._check(response, f"read manifest {reference}")
        return response.content, response.headers.get("Content-Type", MANIFEST).split(";")[0]

    def push_blob(self, data: bytes) -> str:
        digest = sha256(data)
        if self._request("HEAD", f"{self.base}/blobs/{digest}").status_code == 200:
            return digest
        started = self._check(self._request("POST", f"{self.base}/blobs/uploads/"), "start a blob upload")
        location = started.headers["Location"]
        if location.startswith("/"):
            location = self.base.split("/v2/")[0] + location
        separator = "&" if "?" in location else "?"
        self._check(
            self._request(
                "PUT",
                f"{location}{separator}digest={digest}",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            ),
            f"upload blob {digest}",
        )
        return digest

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> httpx.Response:
        return self._check(
            self._request(
                "PUT", f"{self.base}/manifests/{reference}", content=data, headers={"Content-Type": media_type}
            ),
            f"push manifest {reference}",
        )

    def referrers(self, subject: str) -> list[dict[str, Any]]:
        """Descriptors of the manifests that name `subject`: from the referrers API, else from the fallback tag."""
        response = self._request("GET", f"{self.base}/referrers/{subject}")
        if response.status_code == 200 and response.headers.get("Content-Type", "").startswith(INDEX):
            return list(response.json().get("manifests", []))
        found = self.manifest(fallback_tag(subject))
        return list(json.loads(found[0]).get("manifests", [])) if found else []


def fallback_tag(subject: str) -> str:
    """The referrers tag schema's tag for a subject digest: `sha256-<hex>`."""
    return subject.replace(":", "-", 1)


def referrer_manifest(envelope: Envelope, envelope_digest: str, subject: dict[str, Any]) -> bytes:
    """An OCI artifact manifest carrying one DSSE envelope, pointing at the image through `subject`."""
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": DSSE,
            "config": {"mediaType": EMPTY, "digest": sha256(EMPTY_BYTES), "size": len(EMPTY_BYTES)},
            "layers": [
                {
                    "mediaType": DSSE,
                    "digest": envelope_digest,
                    "size": len(envelope.data),
                    "annotations": {PREDICATE_ANNOTATION: envelope.predicate_type},
                }
            ],
            "subject": subject,
            "annotations": {PREDICATE_ANNOTATION: envelope.predicate_type},
        }
    )


def attach(registry: Distribution, image_digest: str, envelopes: list[Envelope]) -> list[str]:
    """Push each envelope as a referrer of `image_digest`; returns the referrer manifests' digests, in order.

    Refused when the registry's manifest at `image_digest` does not hash to it.
    """
    found = registry.manifest(image_digest)
    if found is None or sha256(found[0]) != image_digest:
        raise CheckFailed(f"{registry.host}/{registry.repo} does not hold image {image_digest} to attach to")
    subject = {"mediaType": found[1], "digest": image_digest, "size": len(found[0])}
    registry.push_blob(EMPTY_BYTES)
    pushed: list[dict[str, Any]] = []
    indexed_by_registry = True
    for envelope in envelopes:
        envelope_digest = registry.push_blob(envelope.data)
        manifest = referrer_manifest(envelope, envelope_digest, subject)
        digest = sha256(manifest)
        response = registry.put_manifest(digest, manifest, MANIFEST)
        indexed_by_registry = indexed_by_registry and "OCI-Subject" in response.headers
        pushed.append(
            {
                "mediaType": MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "artifactType": DSSE,
                "annotations": {PREDICATE_ANNOTATION: envelope.predicate_type},
            }
        )
    if not indexed_by_registry:
        _update_fallback_index(registry, image_digest, pushed)
    listed = {d.get("digest") for d in registry.referrers(image_digest)}
    missing = [d["digest"] for d in pushed if d["digest"] not in listed]
    if missing:
        raise CheckFailed(f"the registry does not list referrers {', '.join(missing)} of {image_digest}")
    return [d["digest"] for d in pushed]


def _update_fallback_index(registry: Distribution, image_digest: str, pushed: list[dict[str, Any]]) -> None:
    tag = fallback_tag(image_digest)
    current = registry.manifest(tag)
    manifests: list[dict[str, Any]] = list(json.loads(current[0]).get("manifests", [])) if current else []
    known = {d.get("digest") for d in manifests}
    manifests += [d for d in pushed if d["digest"] not in known]
    index = canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests})
    registry.put_manifest(tag, index, INDEX)
