"""Distributional evaluation through the CLI, end to end on a tiny population sweep: every population's score with the
null beside it lands in summary.json, the results table, MLflow's result runs and the HTML report (with the epsilon
figure), the per-example values are small artifacts, and growing N computes only the new members."""

import json

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from orchestrator.cli import main
from tests.conftest import REPO

pytestmark = pytest.mark.e2e

SWEEP = REPO / "configs" / "sweeps" / "distributional_cpu.yaml"


def tiny(path, tmp_path, **changes):
    """The CPU distributional sweep shrunk to seconds: 1000 signals, a small CNN, the retrained control and two
    methods, 4 members per population in blocks of 2, a short retain-only attack on each member."""
    cfg = OmegaConf.load(SWEEP)
    cfg.dataset.args.num_samples = 1000
    cfg.model.args = {"channels": [8, 16], "hidden": 32}
    cfg.train.epochs = 3
    cfg.methods = [
        {"name": "retrain"},
        {"name": "finetune", "hparams": {"lr": 3.0e-3, "epochs": 0.5, "weight_decay": 0.0}},
        {"name": "neggrad_plus", "hparams": {"lr": 1.0e-2, "epochs": 0.5}},
    ]
    cfg.relearn.epochs, cfg.relearn.eval_every = 1, 2
    cfg.population.members, cfg.population.block, cfg.population.outputs.sample = 4, 2, 100
    cfg.tracking = {"artifact_location": str(tmp_path / "artifacts")}
    for dotted, value in changes.items():
        OmegaConf.update(cfg, dotted, value, merge=False)
    path.write_text(OmegaConf.to_yaml(cfg))
    return path


def run(sweep, tmp_path, name):
    summary = tmp_path / name / "summary.json"
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    code = main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(summary), "--threads", "1"])
    return code, json.loads(summary.read_text())


def executed(tmp_path, summary) -> list[str]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    experiment = client.get_experiment_by_name("unlearn-sweep")
    runs = client.search_runs([experiment.experiment_id], f"tags.sweep_id = '{summary['sweep_id']}'", max_results=500)
    return sorted(r.data.tags["node_kind"] for r in runs if "node_key" in r.data.tags)


def test_a_population_sweep_reports_every_score_beside_its_null_and_grows_by_new_members(tmp_path):
    code, first = run(tiny(tmp_path / "a.yaml", tmp_path), tmp_path, "a")
    assert code == 0 and first["nodes"]["failed"] == 0
    section = first["distributional"]
    assert section["members"] == 4 and 0.0 <= section["null"]["forget_quality"] <= 1.0
    assert section["null"]["epsilons"] and all(0.0 <= e <= 50.0 for e in section["null"]["epsilons"])
    for row in first["results"]:  # every unlearned row: its population's scores, the null's beside each
        scores = row["distributional"]
        assert {"forget_quality", "null_forget_quality", "score", "klom_forget_p95"} <= set(scores)
        assert set(scores["relearned"]["0"]) >= {"forget_quality", "null_forget_quality"}
    control = first["seeds"][0]["retrain"]["distributional"]
    assert control["forget_quality"] == control["null_forget_quality"]  # the control's population is the null

    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    experiment = client.get_experiment_by_name("unlearn-sweep")
    results = client.search_runs(
        [experiment.experiment_id], f"tags.node_kind = 'result' and tags.sweep_id = '{first['sweep_id']}'"
    )
    finetune = next(r for r in results if r.data.params["method"] == "finetune")
    assert {"distributional_forget_quality", "distributional_null_forget_quality"} <= set(finetune.data.metrics)
    assert "distributional_relearned_k0_forget_quality" in finetune.data.metrics
    html = (tmp_path / "a" / "report" / "report.html").read_text()
    assert "Distributional evaluation" in html and "Per-example epsilon" in html

    # The per-example values are the score node's small artifact; the unlearned blocks keep outputs, not weights.
    scores = client.search_runs(
        [experiment.experiment_id], f"tags.node_kind = 'population_score' and tags.sweep_id = '{first['sweep_id']}'"
    )
    assert scores and all(r.data.metrics.get("forget_quality") is not None for r in scores)

    # Growing N from 4 to 6 computes one new block per population and rescoring; every other node is reused.
    code, grown = run(tiny(tmp_path / "b.yaml", tmp_path, **{"population.members": 6}), tmp_path, "b")
    assert code == 0 and grown["distributional"]["members"] == 6
    kinds = executed(tmp_path, grown)
    assert kinds.count("population_train") == 2 and kinds.count("population_unlearn") == 2
    assert kinds.count("population_relearn") == 4  # the new block of the reference, the null and each method
    assert set(kinds) == {"population_train", "population_unlearn", "population_relearn", "population_score"}
