"""Fixtures of the secrets tests: the recorded-response server and a clean redactor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from recorded_api import RecordedAPI

from conveyor.secrets.redaction import forget_all


@pytest.fixture(scope="module")
def _recorded_api() -> Iterator[RecordedAPI]:
    api = RecordedAPI()
    yield api
    api.close()


@pytest.fixture
def api(_recorded_api: RecordedAPI) -> RecordedAPI:
    """The module's recorded-response server, with no routes and no requests yet."""
    _recorded_api.reset()
    return _recorded_api


@pytest.fixture(autouse=True)
def clean_redaction() -> Iterator[None]:
    """Each test starts and ends with no registered secret values."""
    forget_all()
    yield
    forget_all()
