"""The sweep's dataset as an MLflow dataset input of the runs that read it (the runs table's Datasets column)."""

from __future__ import annotations

import hashlib
import json
import time

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException

# What the store says when two processes create one dataset row at once: sqlite's words, PostgreSQL's words, and the
# name of PostgreSQL's error class (psycopg2's and psycopg 3's), which a server whose messages are in another language
# (lc_messages) still shows. Provoked on PostgreSQL 15 behind MLflow's SQL store (tests/test_concurrent_sweeps.py):
# "(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"".
DUPLICATE_ROW = ("UNIQUE constraint failed", "duplicate key value violates unique constraint", "UniqueViolation")


def dataset_input(dataset: dict, context: str) -> DatasetInput:
    """The sweep's dataset as an MLflow dataset input (shown in the run's Datasets column): its registry name and
    arguments, digested without the fields that only say where the files live, so copies in different folders are
    one dataset, as they are one in content keys."""
    from workloads.data import DATASETS, location_fields  # the registry loads torch: not for the record's readers

    hidden = location_fields(DATASETS.get(dataset["name"]).config) if dataset["name"] in DATASETS else ()
    what = {**dataset, "args": {k: v for k, v in dataset.get("args", {}).items() if k not in hidden}}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]
    entity = Dataset(
        name=dataset["name"],
        digest=digest,
        source_type="code",
        source=json.dumps({"tags": {"registry": "workloads.data", "config": json.dumps(what, default=str)}}),
        profile=json.dumps(what, default=str),
    )
    return DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])


def log_dataset(client, run_id: str, dataset: dict, context: str, attempts: int = 5) -> None:
    """The dataset as an input of the run. MLflow's SQL store looks a dataset up, then inserts it: two sweeps (or
    nodes) logging one dataset at the same moment race, and the loser's insert breaks the unique key. The row then
    exists, so the call is repeated; it links the run to that row."""
    for attempt in range(attempts):
        try:
            client.log_inputs(run_id, [dataset_input(dataset, context)])
            return
        except MlflowException as error:
            if attempt == attempts - 1 or not any(text in str(error) for text in DUPLICATE_ROW):
                raise
            time.sleep(0.05 * (attempt + 1))
