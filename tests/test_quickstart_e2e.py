"""The quickstart, shrunk, through the real CLI and a real sqlite MLflow store: results, runs, artifacts, reuse."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from tests.conftest import REPO, tiny_quickstart

pytestmark = pytest.mark.e2e

MODEL_KINDS = {"train_original", "train_retrain", "unlearn"}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One full run of the tiny quickstart, shared by the tests below (they only read it or add to it)."""
    folder = tmp_path_factory.mktemp("quickstart")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    sweep = tiny_quickstart(folder / "sweep.yaml", tracking__artifact_location=str(folder / "artifacts"))
    code = main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(folder / "summary.json")])
    assert code == 0
    return {"folder": folder, "uri": uri, "sweep": sweep, "summary": json.loads((folder / "summary.json").read_text())}


def node_runs(client: MlflowClient, sweep_id: str):
    """The sweep's run and the runs of the nodes it executed (not its links to cached nodes or its result runs)."""
    experiment = client.get_experiment_by_name("unlearn-sweep")
    runs = client.search_runs([experiment.experiment_id], f"tags.sweep_id = '{sweep_id}'", max_results=1000)
    return [r for r in runs if r.data.tags["node_kind"] not in ("link", "result")]


def test_summary_has_the_design_schema(first_run):
    s = first_run["summary"]
    assert {"sweep", "sweep_id", "executor", "wall_seconds", "nodes", "original", "retrain", "results"} <= set(s)
    assert s["nodes"]["executed"] == s["nodes"]["total"] and s["nodes"]["cached"] == 0 and s["nodes"]["failed"] == 0
    for model in (s["original"], s["retrain"]):
        assert {"forget_acc", "heldout_forget_acc", "retain_acc", "test_acc", "run_id"} <= set(model)
    assert set(s["retrain"]["relearned"]) == {"0", "10"} and set(s["original"]["relearned"]) == {"0", "10"}
    for model in [s["original"], s["retrain"]] + [r["unlearned"] for r in s["results"]]:
        assert 0 <= model["mia_auc"] <= 1 and 0 <= model["tow"] <= 1
    assert s["correlations"]["l2_to_original_vs_recovery_k0"]["n"] == 5
    assert -1 <= s["correlations"]["loss_barrier_vs_recovery_k10"]["spearman"] <= 1
    assert {r["method"] for r in s["results"]} == {
        "finetune",
        "neggrad_plus",
        "alternating_scrub",
        "weight_distortion",
        "weight_dist_reg",
    }
    for r in s["results"]:
        assert set(r["relearned"]) == {"0", "10"} and r["relearned"]["0"]["curve"]
        assert r["l2_to_original"] > 0
        assert len(r["lmc"]["t"]) == len(r["lmc"]["test_acc"]) == 5 and r["lmc"]["loss_barrier"] >= 0
        assert r["lmc"]["test_acc"][0] == pytest.approx(s["original"]["test_acc"], abs=1e-6)  # t=0 is the original
        assert r["lmc"]["test_acc"][-1] == pytest.approx(
            r["unlearned"]["test_acc"], abs=1e-6
        )  # t=1 the unlearned model


def test_mlflow_has_a_parent_run_and_one_child_per_node_with_checkpoints(first_run):
    client = MlflowClient(first_run["uri"])
    s = first_run["summary"]
    runs = node_runs(client, s["sweep_id"])
    parents = [r for r in runs if r.data.tags["node_kind"] == "sweep"]
    children = [r for r in runs if r.data.tags["node_kind"] != "sweep"]
    assert len(parents) == 1 and len(children) == s["nodes"]["total"]
    assert len({r.data.tags["node_key"] for r in children}) == len(children)
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id and run.info.status == "FINISHED"
        assert run.data.tags["runtime.flush_denormal"] == "True" and int(run.data.tags["runtime.torch_threads"]) >= 1
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"manifest.json", "result.json"} <= artifacts
        if run.data.tags["node_kind"] in MODEL_KINDS:
            assert "model.pt" in artifacts
    relearn = next(r for r in children if r.data.tags["node_kind"] == "relearn")
    curve = client.get_metric_history(relearn.info.run_id, "heldout_forget_acc")
    assert len(curve) > 1 and len({m.step for m in curve}) == len(curve)  # logged with steps
    assert "summary.json" in {a.path for a in client.list_artifacts(parents[0].info.run_id)}


def test_second_run_computes_and_records_nothing(first_run, tmp_path):
    client = MlflowClient(first_run["uri"])
    experiment = client.get_experiment_by_name("unlearn-sweep").experiment_id
    before = {r.info.run_id: r.info.status for r in client.search_runs([experiment], max_results=5000)}
    code = main(
        ["run", str(first_run["sweep"]), "--tracking-uri", first_run["uri"], "--summary", str(tmp_path / "again.json")]
    )
    again = json.loads((tmp_path / "again.json").read_text())
    assert code == 0
    rerun = again["rerun"]  # this run, beside the summary the sweep recorded (which it leaves as it was)
    assert rerun["nodes"]["executed"] == 0 and rerun["nodes"]["cached"] == rerun["nodes"]["total"]
    assert again["nodes"] == first_run["summary"]["nodes"]
    assert again["results"] == first_run["summary"]["results"]  # the same numbers, read back from the store
    assert again["sweep_id"] == first_run["summary"]["sweep_id"]  # the sweep that holds them
    assert {r.info.run_id: r.info.status for r in client.search_runs([experiment], max_results=5000)} == before


def test_second_run_told_to_record_again_executes_nothing_and_links_every_node(first_run, tmp_path):
    code = main(
        [
            "run",
            str(first_run["sweep"]),
            "--tracking-uri",
            first_run["uri"],
            "--summary",
            str(tmp_path / "again.json"),
            "--record-again",
            "--no-report",
        ]
    )
    again = json.loads((tmp_path / "again.json").read_text())
    assert code == 0 and again["sweep_id"] != first_run["summary"]["sweep_id"]
    assert again["nodes"]["executed"] == 0 and again["nodes"]["cached"] == again["nodes"]["total"]
    assert again["results"] == first_run["summary"]["results"]
    client = MlflowClient(first_run["uri"])
    assert not [r for r in node_runs(client, again["sweep_id"]) if r.data.tags["node_kind"] != "sweep"]
    links = client.search_runs(
        [client.get_experiment_by_name("unlearn-sweep").experiment_id],
        f"tags.sweep_id = '{again['sweep_id']}' and tags.node_kind = 'link'",
        max_results=1000,
    )
    assert len(links) == again["nodes"]["total"]


def test_sweep_changing_one_hparam_reuses_the_shared_parents(first_run, tmp_path, capsys):
    changed = tmp_path / "changed.yaml"
    changed.write_text(first_run["sweep"].read_text().replace("sigma: 0.15", "sigma: 0.3"))
    assert main(["plan", str(changed), "--tracking-uri", first_run["uri"]]) == 0
    plan = capsys.readouterr().out
    for kind in (
        "memorization: 0 to run, 1 cached",
        "train_original: 0 to run, 1 cached",
        "train_retrain: 0 to run, 1 cached",
    ):
        assert kind in plan
    assert "unlearn: 1 to run, 4 cached" in plan
    assert "changed hparams.sigma" in plan  # why the new unlearn node runs
    words = " ".join(plan.split())  # rich wraps the lines at the terminal's width
    assert "estimated compute of the nodes to run" in words and re.search(r"device-hours \(.*\) on this machine", words)
    estimate = plan[plan.index("estimated compute") :]
    assert "train_original" not in estimate and "│ unlearn " in estimate and "│ total " in estimate  # only what runs

    assert main(["run", str(changed), "--tracking-uri", first_run["uri"], "--summary", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    executed = node_runs(MlflowClient(first_run["uri"]), summary["sweep_id"])
    kinds = sorted(r.data.tags["node_kind"] for r in executed if r.data.tags["node_kind"] != "sweep")
    assert kinds == sorted(["unlearn", "evaluate", "relearn", "relearn", "distance", "interpolate"])
    assert summary["original"]["run_id"] == first_run["summary"]["original"]["run_id"]


def checkpoint_of(client: MlflowClient, run_id: str) -> Path:
    return Path(client.get_run(run_id).info.artifact_uri.removeprefix("file://")) / "model.pt"


def test_a_truncated_checkpoint_is_not_a_cached_result(first_run, tmp_path):
    client = MlflowClient(first_run["uri"])
    retrain_run = first_run["summary"]["retrain"]["run_id"]
    checkpoint = checkpoint_of(client, retrain_run)
    checkpoint.write_bytes(checkpoint.read_bytes()[:-8])  # the listing's size no longer matches the manifest
    assert (
        main(
            ["run", str(first_run["sweep"]), "--tracking-uri", first_run["uri"], "--summary", str(tmp_path / "t.json")]
        )
        == 0
    )
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["retrain"]["run_id"] != retrain_run  # recomputed, not loaded
    assert summary["nodes"]["executed"] == 1


def test_a_tampered_checkpoint_is_caught_when_loaded_and_its_node_recomputed(first_run, tmp_path, capsys):
    client = MlflowClient(first_run["uri"])
    original_run = first_run["summary"]["original"]["run_id"]
    checkpoint = checkpoint_of(client, original_run)
    checkpoint.write_bytes(checkpoint.read_bytes()[:-8] + b"tampered")  # same size: only its sha256 tells
    # Looking nodes up reads no checkpoint, so the plan still counts the original as cached...
    assert main(["plan", str(first_run["sweep"]), "--tracking-uri", first_run["uri"]]) == 0
    assert "train_original: 0 to run, 1 cached" in capsys.readouterr().out
    # ...until a new method loads it: the hash fails, the original is retrained, then the new nodes run.
    changed = tmp_path / "changed.yaml"
    changed.write_text(first_run["sweep"].read_text().replace("sigma: 0.15", "sigma: 0.45"))
    assert main(["run", str(changed), "--tracking-uri", first_run["uri"], "--summary", str(tmp_path / "t.json")]) == 0
    summary = json.loads((tmp_path / "t.json").read_text())
    assert summary["original"]["run_id"] != original_run and summary["nodes"]["failed"] == 0
    stale = client.get_run(original_run)
    assert stale.info.status == "FAILED" and "sha256" in stale.data.tags["corrupt_artifact"]
    assert summary["original"]["test_acc"] == pytest.approx(first_run["summary"]["original"]["test_acc"], abs=1e-6)


def test_command_line_entry_point_reports_bad_input_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (REPO / "configs/sweeps/quickstart.yaml")
        .read_text()
        .replace("criterion: high_mem", "criterion: high_mem, colour: red")
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "plan", str(bad)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "forget.colour" in done.stderr and "Traceback" not in done.stderr


def test_digits_with_a_random_forget_set_runs_without_memorization(tmp_path, tracking):
    sweep = tiny_quickstart(
        tmp_path / "digits.yaml",
        dataset={"name": "digits", "args": {}},
        model={"name": "mlp", "args": {"hidden": [32]}},
        forget={"target_class": 3, "fraction": 0.5, "criterion": "random", "seed": 1, "attack_pool_fraction": 0.2},
        methods=[{"name": "neggrad_plus", "hparams": {"epochs": 1, "lr": 1e-2}}],
        tracking__artifact_location=tracking["artifacts"],
    )
    assert main(["run", str(sweep), "--tracking-uri", tracking["uri"], "--summary", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    kinds = {r.data.tags["node_kind"] for r in node_runs(MlflowClient(tracking["uri"]), summary["sweep_id"])}
    assert "memorization" not in kinds and "unlearn" in kinds
    assert summary["original"]["forget_acc"] > 0.5  # class-3 digits are learnable; the original saw them


def test_a_second_seed_reuses_the_first_and_the_report_aggregates_over_seeds(first_run, tmp_path, capsys):
    """Seeds are an axis: adding one computes only its own nodes, and every setting is reported as mean, sd, n."""
    code = main(
        [
            "run",
            str(first_run["sweep"]),
            "seeds=[43,44]",
            "--tracking-uri",
            first_run["uri"],
            "--summary",
            str(tmp_path / "two.json"),
        ]
    )
    two = json.loads((tmp_path / "two.json").read_text())
    first_total = first_run["summary"]["nodes"]["total"]  # seed 43's nodes and the memorization they share
    assert (
        code == 0
        and two["nodes"]["cached"] == first_total
        and two["nodes"]["executed"] == two["nodes"]["total"] - first_total
    )
    settings = two["over_seeds"]["settings"]
    assert len(settings) == 5 and all(s["seeds"] == [43, 44] for s in settings)
    for setting in settings:
        rows = [r for r in two["results"] if r["method"] == setting["method"]]
        heldout = [r["unlearned"]["heldout_forget_acc"] for r in rows]
        metric = setting["metrics"]["unlearned.heldout_forget_acc"]
        assert metric["n"] == 2 and metric["mean"] == pytest.approx(sum(heldout) / 2)
        assert metric["sd"] == pytest.approx(abs(heldout[0] - heldout[1]) / 2**0.5)
    assert two["over_seeds"]["retrain"]["metrics"]["retrain.test_acc"]["n"] == 2
    assert two["correlations"]["l2_to_original_vs_recovery_k0"]["n"] == 5  # settings, not seeds x settings
    assert "mean ± sd over seeds" in capsys.readouterr().out
    # The parent run carries the same aggregate as an MLflow table: one row per setting and control.
    client = MlflowClient(first_run["uri"])
    parent = next(r for r in node_runs(client, two["sweep_id"]) if r.data.tags["node_kind"] == "sweep")
    table = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "over_seeds.json", str(tmp_path))).read_text()
    )
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [r["model"] for r in rows[:2]] == ["original", "retrain (control)"] and len(rows) == 7
    scrub = next(r for r in rows if r["model"].startswith("alternating_scrub"))
    expected = next(s for s in settings if s["method"] == "alternating_scrub")["metrics"][
        "unlearned.heldout_forget_acc"
    ]
    assert scrub["n"] == 2 and scrub["unlearned.heldout_forget_acc mean"] == pytest.approx(expected["mean"])
