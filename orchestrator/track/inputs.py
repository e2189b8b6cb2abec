"""The sweep's dataset as an MLflow dataset input of the runs that read it (the runs table's Datasets column)."""

from __future__ import annotations

import hashlib
import json

from mlflow.entities import Dataset, DatasetInput, InputTag


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
