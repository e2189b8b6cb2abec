"""The plan's compute estimate: each kind's declared work follows its recipe, step costs are measured once per
model and machine and then read from the cache, and `plan` prints the estimate of what it would run."""

import dataclasses
import json

import pytest

from orchestrator.app.plan import observed_times
from orchestrator.app.tracking import open_tracker, tracking_uri
from orchestrator.cli import main
from orchestrator.execute import RunState
from orchestrator.local_cache import cache_dir
from orchestrator.plan import plan_sweep
from orchestrator.plan.cost import BUSY_RECHECK, FORMAT, MAX_AGE, estimate, stale
from orchestrator.plan.dag import build_dag
from orchestrator.plan.labels import training_labels
from orchestrator.report.plan_tables import estimate_lines
from orchestrator.spec import as_dict, load_spec, load_sweep
from tests.conftest import REPO, tiny_quickstart
from workloads.forget import attack_pool_size
from workloads.nodes import NODE_KINDS, DataSize
from workloads.train import pick_device, steps_for

# The formulas are checked against a frozen recipe, so tuning the quickstart does not move them.
QUICKSTART_BEFORE_ISSUE11 = REPO / "tests" / "fixtures" / "sweeps" / "quickstart_before_issue11.yaml"
ONE_METHOD = [{"name": "finetune", "hparams": {"lr": 3.0e-3, "weight_decay": 0.0, "epochs": 0.5}}]


def quickstart_dag(path=QUICKSTART_BEFORE_ISSUE11):
    spec = load_spec(path, [])
    labels, _ = training_labels(as_dict(spec.dataset))
    return spec, labels, build_dag(spec, attack_pool_size(labels.y_train, spec.forget))


def test_each_kind_declares_the_work_of_its_recipe():
    spec, labels, dag = quickstart_dag()
    size = DataSize(len(labels.y_train), labels.test_size)
    assert (size.train, size.test) == (4800, 1200)
    work = {}
    for node in dag:
        work.setdefault(node.kind, []).append(NODE_KINDS.get(node.kind).work(node.config, size))
    per_epoch = lambda n: steps_for(1, n, 128)
    assert work["train_original"][0].train_steps == 100 * per_epoch(4800)  # epochs: 100, batch 128
    assert work["memorization"][0].train_steps == 16 * 40 * per_epoch(round(0.7 * 4800))  # 16 models, 40 epochs on 70%
    assert {w.train_steps for w in work["relearn"]} == {100 * per_epoch(4800)}  # full-training-set convention
    finetune = next(NODE_KINDS.get("unlearn").work(n.config, size) for n in dag if n.method == "finetune")
    neggrad = next(NODE_KINDS.get("unlearn").work(n.config, size) for n in dag if n.method == "neggrad_plus")
    assert finetune.train_steps == 20 * per_epoch(4800)  # retain stream only
    assert neggrad.train_steps == round(1.5 * per_epoch(4800))  # alternating: a forget or a retain batch per step
    joint = next(dataclasses.replace(n.config, method="gradient_ascent") for n in dag if n.method == "neggrad_plus")
    assert NODE_KINDS.get("unlearn").work(joint, size).train_steps == 2 * neggrad.train_steps  # both, every step
    assert all(w.train_steps == 0 and w.forward_examples == 6000 for w in work["evaluate"])
    assert all(w == type(w)() for w in work["distance"])


def test_step_costs_are_measured_once_per_model_and_then_cached(tmp_path):
    spec, labels, dag = quickstart_dag(tiny_quickstart(tmp_path / "q.yaml"))
    first = estimate(dag.nodes, labels, pick_device("cpu"))
    saved = json.loads((cache_dir() / "step_costs.json").read_text())
    mine = [entry for entry in saved.values() if entry["model"]["args"] == {"channels": [8, 16], "hidden": 32}]
    assert {entry["batch"] for entry in mine} == {128} and all(entry["train_step_seconds"] > 0 for entry in mine)
    mtime = (cache_dir() / "step_costs.json").stat().st_mtime_ns
    again = estimate(dag.nodes, labels, pick_device("cpu"))
    assert (cache_dir() / "step_costs.json").stat().st_mtime_ns == mtime  # nothing measured the second time
    assert again.seconds == first.seconds > 0
    assert set(first.kinds) == {node.kind for node in dag}
    assert first.kinds["train_original"].train_steps == steps_for(4, 800, 128)


def test_a_cached_step_cost_is_measured_again_when_older_of_another_form_or_taken_busy():
    fresh = {"format": FORMAT, "measured_at": 1000.0, "load": 0.5, "cores": 2}
    assert not stale(fresh, now=1000.0 + 60)
    assert stale(None) and stale({**fresh, "format": FORMAT - 1}, now=1060.0)  # never measured, or the old way
    assert stale(fresh, now=1000.0 + MAX_AGE + 1)  # old
    busy = {**fresh, "load": 1000.0}  # far busier than this machine can be now
    assert not stale(busy, now=1000.0 + 60) and stale(busy, now=1000.0 + BUSY_RECHECK + 1)


@pytest.mark.e2e
def test_the_estimate_rests_on_the_recorded_times_of_a_real_sweeps_nodes(tmp_path, monkeypatch):
    """A tiny sweep runs; then its training nodes are estimated as if they were to run: measured step costs alone
    land within a factor of the nodes' recorded `node_seconds` (the issue saw 25-90x), and calibrated by those records
    the estimate matches them (a ratio, not a timing)."""
    monkeypatch.chdir(tmp_path)
    sweep, uri = tiny_quickstart(tmp_path / "q.yaml", methods=ONE_METHOD), f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["run", str(sweep), "--tracking-uri", uri, "--threads", "1", "--no-report"]) == 0
    loaded = load_sweep(sweep, [])
    tracker = open_tracker(tracking_uri(uri), loaded.spec.tracking)
    state = RunState(plan_sweep(loaded.spec, list(loaded.settings)), tracker.artifacts)
    state.refresh()
    device, labels = pick_device("cpu"), state.plan.labels
    observed = observed_times(state, set(state.plan.dag), tracker, device)
    size = DataSize(len(labels.y_train), labels.test_size)
    trained = [o for o in observed if NODE_KINDS.get(o.node.kind).work(o.node.config, size).train_steps]
    assert len(trained) >= 4 and len(observed) > len(trained), observed  # training nodes, and some that compute none
    real = sum(o.seconds for o in trained)
    measured = estimate([o.node for o in trained], labels, device)
    calibrated = estimate([o.node for o in trained], labels, device, observed)
    assert 1 / 8 < measured.seconds / real < 8, (measured.seconds, real)
    assert 0.5 < calibrated.seconds / real < 2, (calibrated.seconds, real)
    assert all(k.calibrated == k.nodes for k in calibrated.kinds.values())
    assert calibrated.overhead_nodes and all(basis.factor is not None for basis in calibrated.steps.values())
    shown = " ".join(str(line) for line in estimate_lines(calibrated) if isinstance(line, str))
    assert "finished nodes that compute nothing" in shown
