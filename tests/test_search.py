"""A Ray Tune search over an unlearning method: every trial is a real unlearn node in MLflow, the best setting
joins the sweep's results (its unlearned model reused, not retrained), the parent run records it, and the same
search run again finds every trial in the store. Bad search sections fail before anything runs."""

import json

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.spec import SpecError, load_spec
from tests.conftest import tiny_quickstart

pytestmark = pytest.mark.e2e

SEARCH = {
    "name": "neggrad_plus",
    "space": {"lr": {"loguniform": [1e-3, 3e-2]}},
    "hparams": {"epochs": 0.5},
    "num_samples": 2,
    "max_concurrent": 2,
    "metric": "forget_gap",
    "test_acc_floor": 0.1,
    "seed": 3,
}


def test_search_trials_are_cached_tracked_nodes_and_the_best_joins_the_results(tmp_path):
    sweep = tiny_quickstart(
        tmp_path / "s.yaml",
        methods=[{"name": "finetune", "hparams": {"epochs": 0.5}}],
        relearn__k=[0],
        search=[SEARCH],
        tracking__artifact_location=str(tmp_path / "a"),
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    search = summary["search"][0]
    assert len(search["trials"]) == 2 and not any(t["cached"] for t in search["trials"])
    feasible = [t for t in search["trials"] if t["feasible"]]
    assert search["best"] == min(feasible or search["trials"], key=lambda t: t["score"])
    for trial in search["trials"]:
        assert trial["score"] == pytest.approx(
            abs(trial["forget_acc"] - summary["retrain"]["forget_acc"]) + (0 if trial["feasible"] else 1)
        )

    client = MlflowClient(uri)
    for trial in search["trials"]:  # each trial is an unlearn node of this sweep, with its hparams as params
        run = client.get_run(trial["unlearn_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["node_kind"] == "unlearn"
        assert (
            run.data.tags["sweep_id"] == summary["sweep_id"]
            and float(run.data.params["hparams.lr"]) == trial["hparams"]["lr"]
        )
    best_row = next(r for r in summary["results"] if r["method"] == "neggrad_plus")
    assert best_row["hparams"]["lr"] == search["best"]["hparams"]["lr"]
    assert best_row["run_id"] == search["best"]["unlearn_run_id"]  # the trial's model, not a second one
    assert best_row["relearned"]["0"]["heldout_forget_acc"] is not None and best_row["lmc"] is not None
    parent = client.search_runs(
        [client.get_experiment_by_name("unlearn-sweep").experiment_id],
        f"tags.sweep_id = '{summary['sweep_id']}' and tags.node_kind = 'sweep'",
    )[0]
    assert float(parent.data.params["search.neggrad_plus.best.lr"]) == search["best"]["hparams"]["lr"]
    assert parent.data.tags["search.neggrad_plus.best_run_id"] == search["best"]["unlearn_run_id"]

    # The same search again: the same seeded samples, every trial found in the store, nothing executed.
    assert main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert all(t["cached"] for t in again["search"][0]["trials"]) and again["nodes"]["executed"] == 0
    assert again["search"][0]["best"]["unlearn_run_id"] == search["best"]["unlearn_run_id"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"space": {"lrr": {"uniform": [0, 1]}}}, "search[0].space.lrr: neggrad_plus has no hparam 'lrr'"),
        ({"space": {"lr": {"gaussian": [0, 1]}}}, "search[0].space.lr: expected one of"),
        ({"space": {"lr": {"uniform": [0]}}}, "search[0].space.lr.uniform: expected a list of 2"),
        ({"algorithm": "grid"}, "search[0].algorithm: must be one of random, optuna"),
        ({"metric": "accuracy"}, "search[0].metric: must be one of forget_gap"),
        ({"name": "forgetful"}, "search[0].name: unknown unlearning method 'forgetful'"),
    ],
)
def test_bad_search_sections_are_named(tmp_path, change, message):
    path = tiny_quickstart(tmp_path / "s.yaml", search=[{**SEARCH, **change}])
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_spec(path)
