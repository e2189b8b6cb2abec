"""A node that raises: recorded as a FAILED run with its traceback, retried as asked, its descendants skipped,
everything else finished, exit code 1. Overrides may index into the methods list."""

import json
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.spec import load_spec
from tests.conftest import tiny_quickstart

pytestmark = pytest.mark.e2e


def test_list_index_overrides_reach_the_method(tmp_path):
    spec = load_spec(tiny_quickstart(tmp_path / "q.yaml"), ["methods.1.hparams.lr=0.5", "methods.0.hparams.epochs=2"])
    assert spec.methods[1].hparams["lr"] == 0.5 and spec.methods[0].hparams["epochs"] == 2


def test_a_failing_node_is_retried_then_failed_and_the_rest_of_the_sweep_finishes(tmp_path):
    sweep = tiny_quickstart(tmp_path / "q.yaml", tracking__artifact_location=str(tmp_path / "a"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # A KL reduction torch does not know passes the schema and breaks at run time, in one unlearn node only.
    code = main(
        [
            "run",
            str(sweep),
            "methods.2.hparams.kl_reduction=nonsense",
            "--retries",
            "1",
            "--tracking-uri",
            uri,
            "--summary",
            str(tmp_path / "s.json"),
        ]
    )
    summary = json.loads((tmp_path / "s.json").read_text())
    assert code == 1
    assert summary["nodes"] == {"total": 41, "executed": 35, "cached": 0, "failed": 6}  # the node and its 5 descendants

    client = MlflowClient(uri)
    runs = [
        r
        for r in client.search_runs(
            [client.get_experiment_by_name("unlearn-sweep").experiment_id],
            "tags.node_kind != 'sweep'",
            max_results=1000,
        )
        if "node_key" in r.data.tags
    ]  # node runs, not result runs
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 2 and len({r.data.tags["node_key"] for r in failed}) == 1  # the first try and one retry
    assert all("nonsense" in r.data.tags["error"] and r.data.tags["node_kind"] == "unlearn" for r in failed)
    finished = Counter(r.data.tags["node_key"] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == 35 and set(finished.values()) == {1}
    scrub = next(r for r in summary["results"] if r["method"] == "alternating_scrub")
    assert (scrub["run_id"], scrub["unlearned"], scrub["relearned"]) == (None, None, {})  # no made-up numbers


def test_an_unreachable_ray_cluster_is_bad_input_named_before_anything_runs(tmp_path, capsys):
    sweep = tiny_quickstart(tmp_path / "q.yaml", tracking__artifact_location=str(tmp_path / "a"))
    code = main(
        [
            "run",
            str(sweep),
            "--executor",
            "ray",
            "--address",
            "auto",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--summary",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 2 and "--address: cannot connect to a Ray cluster at auto" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
