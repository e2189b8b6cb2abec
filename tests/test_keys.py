"""Content keys: the same config gives the same key; a changed unlearning hparam changes only what depends on it."""

import torch

from orchestrator.execute import RunState, Status
from orchestrator.plan import NodeIdentity, build_dag, canonical_json, plan_sweep
from orchestrator.spec import load_spec
from tests.conftest import QUICKSTART, tiny_quickstart
from workloads.nodes import NODE_KINDS


class NoArtifacts:
    def find(self, key):
        return None

    def load_tensors(self, run_id):
        torch.manual_seed(0)
        return {"scores": torch.rand(800)}


def resolved_keys(path, overrides=()):
    """Every key, from a store that has never seen anything (key resolution needs only the memorization scores)."""
    state = RunState(plan_sweep(load_spec(path, overrides)), NoArtifacts())
    memorization = state.plan.dag.memorization
    state.resolve_key(memorization)
    state[memorization].status, state[memorization].run_id = Status.CACHED, "fake"
    state.refresh()
    return {node.label: node.key for node in state.plan.dag}


def test_canonical_json_ignores_key_order_and_float_spelling():
    assert canonical_json({"b": 1e-3, "a": [1, 2.0]}) == canonical_json({"a": [1, 2.0], "b": 0.001})
    assert canonical_json({"x": 1}) != canonical_json({"x": 1.0})
    assert NodeIdentity("unlearn", 1, {"lr": 0.1}, {}, {}).key != NodeIdentity("unlearn", 2, {"lr": 0.1}, {}, {}).key


def test_same_config_same_keys_and_every_key_resolves(tmp_path):
    path = tiny_quickstart(tmp_path / "sweep.yaml")
    first, second = resolved_keys(path), resolved_keys(path)
    assert first == second
    assert all(first.values()) and len(set(first.values())) == len(first)


def test_changed_unlearning_hparam_changes_only_its_downstream(tmp_path):
    base = resolved_keys(tiny_quickstart(tmp_path / "a.yaml"))
    spec_lr = tiny_quickstart(tmp_path / "c.yaml")
    text = spec_lr.read_text().replace("sigma: 0.15", "sigma: 0.25")
    spec_lr.write_text(text)
    other = resolved_keys(spec_lr)
    differing = {label for label in base if base[label] != other.get(label)}
    assert differing, "changing sigma must create new nodes"
    assert all("weight_distortion" in label for label in differing), differing
    kinds = {label.split()[0] for label in differing}
    assert kinds == {"unlearn", "evaluate", "relearn", "distance", "lmc"}
    for label in base:
        if label.startswith(("memorization", "original", "retrain", "evaluate original", "evaluate retrain")):
            assert base[label] == other[label]


def test_changing_the_forget_set_keeps_the_original_but_not_the_retrain(tmp_path):
    base = resolved_keys(tiny_quickstart(tmp_path / "a.yaml"))
    other = resolved_keys(tiny_quickstart(tmp_path / "b.yaml", forget__fraction=0.2))
    assert base["original seed=43"] == other["original seed=43"]
    assert base["memorization"] == other["memorization"]
    assert base["retrain seed=43"] != other["retrain seed=43"]


def test_every_node_kind_is_registered():
    dag = build_dag(load_spec(QUICKSTART))
    assert {node.kind for node in dag} <= set(NODE_KINDS)
