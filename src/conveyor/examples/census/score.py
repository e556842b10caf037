"""Scoring entry point of the census model: what `conveyor serve`, `conveyor test` and `conveyor score-batch` call.

conveyor calls `init()` once per process (per server worker, per batch worker), then, as the caller needs:

- `run(request)`: one request body of `conveyor serve` (JSON text, bytes or an already parsed object) → one
  JSON-able result.
- `run_batch(requests)`, optional: requests the server gathered into one call, as a list of such objects → a list
  of results, one per request, in the same order.
- `run_table(batch)`, optional: the columnar hook of `conveyor score-batch`. `batch` is a `pyarrow.RecordBatch`
  of dataset rows (the dataset's own columns and types). Return the predictions for those rows as columns, one
  value per row and in row order, as one of:
    - a dict of column name → numpy array, pyarrow array or list;
    - a `pyarrow.RecordBatch` or `pyarrow.Table`;
    - a single numpy or pyarrow array (becomes a column named `prediction`).
  conveyor appends these columns to the rows and writes them out; their names must differ from the input's. To
  refuse a batch because an input column is missing or unusable, raise an exception whose `field` attribute
  names the column: score-batch reports it as bad input (exit 2), as the server answers 422.
  Without `run_table`, score-batch hands each batch to `run_batch` as a list of dicts (or to `run` row by row):
  the same answers, much slower on millions of rows.
"""

from inference.model import EXAMPLE_REQUEST, WageModel  # noqa: F401  (EXAMPLE_REQUEST documents the API)

model: WageModel


def init() -> None:
    global model
    model = WageModel.load()


def run(raw_request):
    return model.score(raw_request)


def run_batch(raw_requests):
    return model.score_batch(raw_requests)


def run_table(batch):
    return model.score_table(batch)
