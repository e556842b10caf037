"""Adaptive batching, per-request fallback, 500s with error ids, secret redaction, init failure."""

from __future__ import annotations

import asyncio
import re

import httpx


def _histogram(metrics: str, name: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf'{name}_bucket{{le="([^"]+)"}} (\S+)', metrics)}


async def _concurrent(url: str, bodies: list[dict]) -> list[httpx.Response]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(bodies)), timeout=30) as client:
        return await asyncio.gather(*(client.post(f"{url}/score", json=body) for body in bodies))


def test_concurrent_requests_are_gathered_and_a_bad_one_fails_alone(toy_server) -> None:
    bodies = [{"x": i} for i in range(15)] + [{"x": "not a number"}]
    responses = asyncio.run(_concurrent(toy_server.url, bodies))
    assert [r.status_code for r in responses[:15]] == [200] * 15
    assert [r.json()["y"] for r in responses[:15]] == [2 * i for i in range(15)]
    assert responses[15].status_code == 422 and responses[15].json()["field"] == "x"
    metrics = httpx.get(f"{toy_server.url}/metrics").text
    buckets = _histogram(metrics, "conveyor_batch_size")
    assert buckets["+Inf"] < 16, "16 concurrent requests should not have been 16 batches"
    assert buckets["+Inf"] - buckets["1.0"] >= 1, "no batch gathered more than one request"
    fallbacks = re.search(r"conveyor_batch_fallbacks_total (\d+)", metrics)
    assert fallbacks and int(fallbacks.group(1)) >= 1


def test_run_raising_is_500_with_only_an_error_id_and_the_details_in_the_log(toy_server, toy_secret) -> None:
    response = httpx.post(f"{toy_server.url}/score", json={"x": 1, "boom": True})
    assert response.status_code == 500
    body = response.json()
    assert body["kind"] == "score_error" and re.fullmatch(r"[0-9a-f]{16}", body["error_id"])
    assert toy_secret not in response.text and body["error_id"] in body["error"] and "RuntimeError" not in body["error"]
    assert httpx.post(f"{toy_server.url}/score", json={"x": 2}).json()["y"] == 4
    log = toy_server.log()
    assert f"error_id={body['error_id']}" in log and "Traceback" in log and "RuntimeError" in log
    assert toy_secret not in log


def test_init_failure_exits_nonzero_with_a_clear_message(toy_package, start_server) -> None:
    server = start_server(toy_package, "--workers", "1", env={"TOY_FAIL_INIT": "1"}, ready=False)
    code = server.process.wait(60)
    log = server.log()
    assert code == 2, log
    assert "init() of" in log and "failed" in log and "the disk said no" in log
