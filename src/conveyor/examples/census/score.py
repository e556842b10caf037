"""Scoring entry point: the server calls `init()` once, then `run()` per request (or `run_batch()` per batch)."""

from inference.model import EXAMPLE_REQUEST, WageModel  # noqa: F401  (EXAMPLE_REQUEST documents the API)

model: WageModel


def init() -> None:
    global model
    model = WageModel.load()


def run(raw_request):
    return model.score(raw_request)


def run_batch(raw_requests):
    return model.score_batch(raw_requests)
