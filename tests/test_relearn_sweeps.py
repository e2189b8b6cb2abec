"""Relearning attacks through the CLI: one relearn set per sweep, the models shared between sweeps by the cache."""

import json

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from tests.conftest import tiny_quickstart

pytestmark = pytest.mark.e2e


def run(sweep, tmp_path, name):
    code = main(
        [
            "run",
            str(sweep),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
            "--summary",
            str(tmp_path / f"{name}.json"),
        ]
    )
    return code, json.loads((tmp_path / f"{name}.json").read_text())


def executed_kinds(tmp_path, summary):
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    experiment = client.get_experiment_by_name("unlearn-sweep")
    runs = client.search_runs([experiment.experiment_id], f"tags.sweep_id = '{summary['sweep_id']}'")
    return sorted(r.data.tags["node_kind"] for r in runs if "node_key" in r.data.tags)  # executed nodes only


def test_a_second_relearn_set_reuses_every_model_and_runs_only_attacks(tmp_path):
    common = dict(
        forget={"target_class": 0, "fraction": 0.5, "criterion": "random", "seed": 0, "attack_pool_fraction": 0.5},
        methods=[{"name": "neggrad_plus", "hparams": {"epochs": 1, "lr": 1e-2}}],
        tracking__artifact_location=str(tmp_path / "a"),
    )
    code, first = run(tiny_quickstart(tmp_path / "a.yaml", **common), tmp_path, "a")
    assert code == 0
    corrupted = tiny_quickstart(
        tmp_path / "b.yaml",
        **common,
        relearn__relearn_set="corrupted_test+retain_cls",
        dataset__args__corrupted_test=True,
    )
    code, second = run(corrupted, tmp_path, "b")
    assert code == 0 and second["nodes"]["failed"] == 0 and set(second["results"][0]["relearned"]) == {"0", "10"}
    # The corrupted copy feeds only the attacks: every model, evaluation and weight-space node is reused.
    assert executed_kinds(tmp_path, second) == ["relearn"] * 6

    only_forget = tiny_quickstart(tmp_path / "c.yaml", **common, relearn__relearn_set="only_forget")
    code, third = run(only_forget, tmp_path, "c")
    assert code == 0 and set(third["results"][0]["relearned"]) == {"10"}  # k=0 would give the attacker nothing
    assert executed_kinds(tmp_path, third) == ["relearn"] * 3  # original, retrain, unlearned: every model reused
