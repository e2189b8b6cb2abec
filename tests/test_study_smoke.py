"""The reference study's sweep, `smoke` profile, through the CLI on CPU: the full DAG shape on tiny CIFAR-format
data."""

import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from tests.conftest import REPO
from tests.test_cifar import write_batch
from workloads.nodes import NODE_KINDS

pytestmark = pytest.mark.e2e

STUDY = REPO / "configs" / "sweeps" / "cifar10_resnet18_study.yaml"

# Node kinds of axes the reference study does not use: populations (tests/test_population_sweep.py) and the worst-case
# forget set (tests/test_worst_case.py), each run end to end through the CLI there.
OTHER_AXES = {"population_train", "population_unlearn", "population_relearn", "population_score", "select_forget"}


def write_tiny_cifar10(root, per_batch=60, test=100):
    """Five training batches and a test batch in the official layout; labels cycle so every class is present."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for b in range(1, 6):
        write_batch(
            folder / f"data_batch_{b}",
            rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            {"labels": (np.arange(per_batch) + b) % 10},
        )
    write_batch(
        folder / "test_batch", rng.integers(0, 256, (test, 3072), dtype=np.uint8), {"labels": np.arange(test) % 10}
    )


def test_study_plan_lists_every_node_of_the_study_without_data(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["plan", str(STUDY), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 0
    out = capsys.readouterr().out
    assert "229 nodes" in out  # 21 unlearn nodes (9 chained), 23 attacked models (with the original) x 6 k values, ...
    for chained in (
        "tar after circuit_breakers",
        "mode_connectivity after alternating_scrub",
        "weight_dist_reg after weight_distortion",
    ):
        assert chained in out


def test_smoke_study_runs_end_to_end_and_every_method_changes_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tiny_cifar10(tmp_path / "cifar")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # 300 images leave an attack pool of 3: the k grid stops there (the profile's k=5 needs its 500 images).
    code = main(
        [
            "run",
            str(STUDY),
            "smoke",
            f"dataset.args.root={tmp_path / 'cifar'}",
            "dataset.args.verify=false",
            "relearn.k=[0,1,3]",
            f"tracking.artifact_location={tmp_path / 'artifacts'}",
            "--tracking-uri",
            uri,
            "--summary",
            str(tmp_path / "s.json"),
        ]
    )
    summary = json.loads((tmp_path / "s.json").read_text())
    assert code == 0, summary["nodes"]
    assert summary["nodes"]["failed"] == 0 and summary["nodes"]["executed"] == summary["nodes"]["total"]
    methods = {(r["method"], r["start_from"] and r["start_from"]["method"]) for r in summary["results"]}
    assert len(methods) == 22 and ("tar", "circuit_breakers") in methods
    # Every registered node kind of the study ran (the other axes' kinds run in their own e2e tests), and the
    # oracle's rows (the retrained control) stay out of the correlations.
    client = MlflowClient(uri)
    kinds = {
        run.data.tags.get("node_kind")
        for run in client.search_runs([client.get_experiment_by_name("unlearn-sweep").experiment_id], max_results=1000)
    }
    assert set(NODE_KINDS.names()) >= OTHER_AXES and set(NODE_KINDS.names()) - OTHER_AXES <= kinds
    unlearned = [r for r in summary["results"] if r["method"] != "retrain"]
    assert summary["correlations"]["l2_to_original_vs_recovery_k0"]["n"] == len(unlearned) < len(summary["results"])
    original = torch.load(
        client.download_artifacts(summary["original"]["run_id"], "model.pt", str(tmp_path)), weights_only=True
    )
    for result in summary["results"]:
        if result["method"] == "retrain":
            continue
        folder = tmp_path / result["run_id"]
        folder.mkdir(exist_ok=True)
        state = torch.load(client.download_artifacts(result["run_id"], "model.pt", str(folder)), weights_only=True)
        changed = any(not torch.equal(original[k], v) for k, v in state.items() if v.is_floating_point())
        assert changed, f"{result['method']} (after {result['start_from']}) returned the original unchanged"
        assert result["l2_to_original"] > 0
