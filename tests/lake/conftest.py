"""Fixtures for the lake tests: an in-memory secret store, a moto S3 server and an Azurite blob server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.errors import SecretError

REPO = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO / ".cache" / "npm" / "node_modules" / ".bin" / "azurite-blob"
INSTALL_AZURITE = REPO / "scripts" / "install-azurite.sh"
# The emulator's published development account (not a secret: it is the same on every machine).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# Credentials for the moto server: any values work; distinctive ones keep redaction from masking common words.
S3_KEY_ID = "AKIACONVEYORLAKETEST"
S3_SECRET = "conveyor-lake-test-secret-6b1f0c"


class MemorySecretStore:
    """A `SecretStore` held in a dict."""

    def __init__(self, values: dict[str, str] | None = None, url: str = "memory://test") -> None:
        self.url = url
        self.values = dict(values or {})
        self.asked: list[str] = []

    def get(self, key: str) -> str:
        self.asked.append(key)
        if key not in self.values:
            raise SecretError(f"secret {key!r} is missing from store {self.url}")
        return self.values[key]

    def names(self) -> list[str]:
        return sorted(self.values)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_endpoint: str) -> str:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="lake-stage")
    return "lake-stage"


@pytest.fixture
def s3_secrets(s3_endpoint: str) -> MemorySecretStore:
    return MemorySecretStore(
        {"aws-access-key-id": S3_KEY_ID, "aws-secret-access-key": S3_SECRET, "s3-endpoint-url": s3_endpoint}
    )


def azurite_binary() -> Path:
    """The azurite-blob launcher, installed by scripts/install-azurite.sh when npm is there; else skip."""
    if AZURITE_BIN.exists():
        return AZURITE_BIN
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(f"Azurite needs Node.js and npm (absent); then {INSTALL_AZURITE.relative_to(REPO)} installs it")
    subprocess.run(["bash", str(INSTALL_AZURITE)], check=True, stdout=subprocess.DEVNULL, timeout=300)
    return AZURITE_BIN


@pytest.fixture(scope="session")
def azurite_blob(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Azurite blob server on a free loopback port; yields its connection string."""
    binary = azurite_binary()
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    log = (workdir / "azurite.log").open("wb")
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    try:
        wait_for_port(port, process)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="session")
def azure_container(azurite_blob: str) -> str:
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(azurite_blob).create_container("datalake")
    return "datalake"


@pytest.fixture
def azure_secrets(azurite_blob: str) -> MemorySecretStore:
    return MemorySecretStore({"storage-connection-string": azurite_blob})


@pytest.fixture
def memory_store() -> type[MemorySecretStore]:
    """The in-memory `SecretStore` class, for tests that fill their own."""
    return MemorySecretStore
