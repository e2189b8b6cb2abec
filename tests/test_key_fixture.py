"""Content keys are a promise: users' stores hold days of GPU work under them. Every node key of the fixture sweeps
is recorded (tests/fixtures/content_keys.json, with the kind and method versions it was recorded under); the code of
today must compute exactly those keys. Memorization scores are fixed arrays, so the forget set is known without
training anything. A change that moves a key here must be a change of semantics, with the kind's (or method's)
version bumped, the fixture re-recorded and the reason written in its `_about`."""

import json

import numpy as np
import pytest
import torch

from orchestrator.plan import build_dag, node_identity
from orchestrator.spec import as_dict, load_spec, method_defaults
from tests.conftest import REPO
from tests.test_study_smoke import write_tiny_cifar10
from workloads.forget import attack_pool_size, select_forget_set
from workloads.methods import METHODS
from workloads.nodes import NODE_KINDS, dataset_for

FIXTURES = REPO / "tests" / "fixtures"
RECORDED = json.loads((FIXTURES / "content_keys.json").read_text())


def planned_keys(case: str, cifar_root, extra_overrides=()) -> dict[str, dict]:
    recorded = RECORDED["cases"][case]
    overrides = [o.replace("<tiny cifar>", str(cifar_root)) for o in recorded["overrides"]] + list(extra_overrides)
    spec = load_spec(REPO / recorded["sweep"], overrides)
    data = dataset_for({"dataset": as_dict(spec.dataset)})
    scores = torch.from_numpy(np.load(FIXTURES / f"scores_{case}.npy"))
    forget_set = select_forget_set(data.y_train, spec.forget, scores, data.num_classes)
    dag = build_dag(spec, attack_pool_size(data.y_train, spec.forget))
    keys = {}
    for node in dag:  # topological: every input is keyed before the nodes that read it
        node.key = node_identity(
            node.kind, node.config, node.input_keys, forget_set if node.reads_forget_set else None
        ).key
        keys[node.label] = {"kind": node.kind, "key": node.key}
    return keys


@pytest.mark.parametrize("case", sorted(RECORDED["cases"]))
def test_every_node_keeps_the_key_it_had_before_the_restructuring(case, tmp_path):
    write_tiny_cifar10(tmp_path / "cifar", per_batch=100, test=200)
    now, before = planned_keys(case, tmp_path / "cifar"), RECORDED["cases"][case]["nodes"]
    assert set(now) == set(before), (
        f"nodes added {sorted(set(now) - set(before))[:3]}, removed {sorted(set(before) - set(now))[:3]}"
    )
    moved = [label for label in before if now[label] != before[label]]
    assert not moved, f"{len(moved)} of {len(before)} keys moved, e.g. {moved[:3]}"


def test_every_method_keeps_its_resolved_defaults():
    """Method defaults files now inherit (`base:`); what they resolve to must not have changed."""
    assert sorted(METHODS.names()) == sorted(RECORDED["method_defaults"])
    for name, defaults in RECORDED["method_defaults"].items():
        assert method_defaults(name) == defaults, name


def test_the_keys_were_recorded_under_todays_versions():
    """A version bumped without re-recording the fixture (or recorded without a bump) fails here, naming it."""
    kinds = {name: NODE_KINDS.get(name).version for name in NODE_KINDS.names()}
    methods = {name: METHODS.get(name).version for name in METHODS.names() if METHODS.get(name).version != 1}
    assert kinds == RECORDED["versions"]["kinds"]
    assert methods == RECORDED["versions"]["methods"]


def test_new_options_at_their_defaults_keep_every_key(tmp_path):
    """Options added after keys were stored (augmentation in unlearning and relearning, augmented evaluation) stay
    out of the key at the value that reproduces the old behaviour, written out or not; any other value moves it."""
    write_tiny_cifar10(tmp_path / "cifar", per_batch=100, test=200)
    recorded = RECORDED["cases"]["quickstart"]["nodes"]
    explicit = planned_keys(
        "quickstart",
        tmp_path / "cifar",
        ["method_overrides={augment: false}", "relearn.augment=false", "evaluation.augment=false"],
    )
    augmented = planned_keys("quickstart", tmp_path / "cifar", ["relearn.augment=true"])
    assert {label: entry["key"] for label, entry in explicit.items()} == {
        label: entry["key"] for label, entry in recorded.items()
    }
    moved = {label for label in recorded if augmented[label]["key"] != recorded[label]["key"]}
    assert moved == {label for label in recorded if label.startswith("relearn")}
