"""Reading a registry on an MLflow tracking server through MLflow's documented REST API (`/api/2.0/mlflow/...`).

No `import mlflow`: httpx and a handful of GET requests. Credentials and TLS settings are the ones MLflow's client
reads from the environment: MLFLOW_TRACKING_TOKEN (bearer), MLFLOW_TRACKING_USERNAME/PASSWORD (basic),
MLFLOW_TRACKING_INSECURE_TLS, MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_CLIENT_CERT_PATH and
MLFLOW_HTTP_REQUEST_TIMEOUT. (Custom auth plugins, MLFLOW_TRACKING_AUTH, make conveyor use MLflow's client.)
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.registry.model_version import PROMPT_TAG, ModelVersionInfo, newest_first
from conveyor.registry.reader import ReadPath

if TYPE_CHECKING:
    import httpx

API = "/api/2.0/mlflow"
MODELS_PAGE = 1000  # the server's limit for registered-models/search
VERSIONS_PAGE = 10_000
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # how the server says "no such model/alias"
# What MLflow's client adds to a registered-model search so that prompts are left out.
NO_PROMPTS = f"tag.`{PROMPT_TAG}` != 'true'"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _tags(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items or []}


def _version(data: dict[str, Any], aliases: dict[str, list[str]] | None = None) -> ModelVersionInfo:
    version = str(data["version"])
    own = [str(a) for a in data.get("aliases") or []]
    if aliases is not None:
        own = aliases.get(version, own)
    return ModelVersionInfo(
        name=str(data["name"]),
        version=version,
        run_id=str(data["run_id"]) if data.get("run_id") else None,
        source=str(data.get("source") or ""),
        created_at=int(data.get("creation_timestamp") or 0),
        tags=_tags(data.get("tags")),
        aliases=tuple(sorted(own)),
    )


class RestRegistry:
    """A registry on an MLflow tracking server, read over its REST API."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        self.path = ReadPath.REST
        self.reason = "MLflow's REST API"
        self._http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            import httpx

            auth: httpx.Auth | tuple[str, str] | None = None
            headers = {}
            if os.environ.get("MLFLOW_TRACKING_TOKEN"):
                headers["Authorization"] = f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"
            elif os.environ.get("MLFLOW_TRACKING_USERNAME"):
                auth = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
            verify: bool | str = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or True
            if _flag("MLFLOW_TRACKING_INSECURE_TLS"):
                verify = False
            self._http = httpx.Client(
                base_url=self.uri + API,
                auth=auth,
                headers=headers,
                verify=verify,
                cert=os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None,
                timeout=float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120),
            )
        return self._http

    def _get(self, endpoint: str, **params: Any) -> dict[str, Any] | None:
        """GET an endpoint; None when the server says the thing does not exist."""
        import httpx

        try:
            response = self.http.get(endpoint, params={k: v for k, v in params.items() if v is not None})
        except httpx.HTTPError as exc:
            raise ConveyorError(
                f"cannot reach the MLflow server {self.uri}: {exc}",
                hint="Check the environment's registry URI and that the server is running.",
            ) from None
        if response.status_code in (400, 404):
            try:
                code = response.json().get("error_code")
            except ValueError:
                code = None
            if code in NOT_FOUND:
                return None
        if response.status_code in (401, 403):
            raise ConveyorError(
                f"the MLflow server {self.uri} refused the request ({response.status_code})",
                hint="Set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.",
            )
        if response.status_code != 200:
            raise ConveyorError(
                f"the MLflow server {self.uri} answered {response.status_code} to {endpoint}: {response.text[:300]}"
            )
        data: dict[str, Any] = response.json()
        return data

    def _pages(self, endpoint: str, key: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            data = self._get(endpoint, page_token=token, **params) or {}
            items += data.get(key) or []
            token = data.get("next_page_token")
            if not token:
                return items

    def model_names(self) -> list[str]:
        found = self._pages(
            "/registered-models/search", "registered_models", max_results=MODELS_PAGE, filter=NO_PROMPTS
        )
        return sorted(str(m["name"]) for m in found)

    def _aliases(self, name: str) -> dict[str, list[str]]:
        data = self._get("/registered-models/get", name=name) or {}
        by_version: dict[str, list[str]] = {}
        for item in (data.get("registered_model") or {}).get("aliases") or []:
            by_version.setdefault(str(item["version"]), []).append(str(item["alias"]))
        return by_version

    def versions(self, name: str) -> list[ModelVersionInfo]:
        found = self._pages(
            "/model-versions/search", "model_versions", filter=f"name = '{name}'", max_results=VERSIONS_PAGE
        )
        if not found:
            return []
        aliases = self._aliases(name)  # the server's search leaves versions' aliases out
        return newest_first([_version(v, aliases) for v in found])

    def _one(self, data: dict[str, Any] | None) -> ModelVersionInfo | None:
        if data is None or "model_version" not in data:
            return None
        found = _version(data["model_version"])
        return None if PROMPT_TAG in found.tags else found  # MLflow's client refuses a prompt's version

    def version(self, name: str, version: str) -> ModelVersionInfo | None:
        return self._one(self._get("/model-versions/get", name=name, version=version))

    def version_by_alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        return self._one(self._get("/registered-models/alias", name=name, alias=alias))

    def run_data(self, run_id: str) -> tuple[dict[str, float], dict[str, str]]:
        data = self._get("/runs/get", run_id=run_id)
        if data is None:
            return {}, {}
        run = data.get("run") or {}
        values = run.get("data") or {}
        metrics = {str(m["key"]): _number(m.get("value")) for m in values.get("metrics") or []}
        params = {str(p["key"]): str(p.get("value", "")) for p in values.get("params") or []}
        return metrics, params


def _number(value: Any) -> float:
    """A metric value as MLflow's JSON writes it (NaN and infinities may come as strings)."""
    if value is None:
        return math.nan
    return float(value)
