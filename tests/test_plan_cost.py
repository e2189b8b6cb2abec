"""The plan's compute estimate: each kind's declared work follows its recipe, step costs are measured once per
model and machine and then read from the cache, and `plan` prints the estimate of what it would run."""

import dataclasses
import json

from orchestrator.local_cache import cache_dir
from orchestrator.plan.cost import estimate
from orchestrator.plan.dag import build_dag
from orchestrator.plan.labels import training_labels
from orchestrator.spec import as_dict, load_spec
from tests.conftest import REPO, tiny_quickstart
from workloads.forget import attack_pool_size
from workloads.nodes import NODE_KINDS, DataSize
from workloads.train import pick_device, steps_for

# The formulas are checked against a frozen recipe, so tuning the quickstart does not move them.
QUICKSTART_BEFORE_ISSUE11 = REPO / "tests" / "fixtures" / "sweeps" / "quickstart_before_issue11.yaml"


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
