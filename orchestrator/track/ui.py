"""Where MLflow's UI shows a sweep's results (the experiment's runs table with the shared view `results`, which
lineage.py keeps listing the latest sweep's result runs), and a store's URI as it is opened. No MLflow import: a
re-run that finds its sweep finished prints them without one."""

from __future__ import annotations

import json
import os
from typing import Optional
from urllib.parse import quote

RESULTS_VIEW = "results"


def ui_path(experiment_id: str, view: Optional[str] = RESULTS_VIEW) -> str:
    """Where in MLflow's UI (after its address) the experiment opens on its runs table. MLflow 3.17's UI chooses
    between a GenAI overview and the runs table by its `workflowType` switch, not by the experiment's kind tag."""
    return f"#/experiments/{experiment_id}/runs?workflowType=machine_learning" + (
        f"&viewStateShareKey={view}" if view else ""
    )


def compare_path(experiment_id: str, run_ids: list[str]) -> str:
    """MLflow's compare view of these runs, in the model-training UI: its own Compare button leaves `workflowType`
    out, and the UI then falls back to its GenAI sidebar."""
    runs, experiments = json.dumps(list(run_ids)), json.dumps([str(experiment_id)])
    return f"#/compare-runs?runs={quote(runs)}&experiments={quote(experiments)}&workflowType=machine_learning"


def ui_address(uri: str, experiment_id: str) -> str:
    """How to open the results view: the address on a tracking server, or the `mlflow ui` command for a local store."""
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{ui_path(experiment_id)}"
    return f"mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{ui_path(experiment_id)}"


def absolute(uri: str) -> str:
    """The URI with a relative sqlite path made absolute, as the store is opened (workers may run in another folder)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri.removeprefix("sqlite:///"))
    return uri
