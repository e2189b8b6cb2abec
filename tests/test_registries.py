"""Every registered relearn set, metric and node kind, discovered from its registry, so an entry without a test
cannot slip in (methods have theirs in test_methods.py)."""

import dataclasses
import math

import pytest
import torch

from workloads.data import Dataset
from workloads.forget import ForgetConfig, select_forget_set
from workloads.methods import METHODS
from workloads.metrics import METRICS, compute_metrics
from workloads.nodes import NODE_KINDS, DataNodeConfig, DatasetRef, DistanceNodeConfig, ModelRef, TrainNodeConfig
from workloads.relearn_sets import RELEARN_SETS, attacker_set, usable_ks
from workloads.speed import SpeedConfig
from workloads.train import TrainConfig

CLASSES, TARGET, N_TRAIN, N_TEST = 4, 1, 400, 80


def identifiable_data() -> Dataset:
    """x of training example i is i, of test example j is 10_000 + j, of its corrupted copy 20_000 + j."""
    y_train, y_test = torch.arange(N_TRAIN) % CLASSES, torch.arange(N_TEST) % CLASSES
    return Dataset(
        torch.arange(N_TRAIN, dtype=torch.float32).view(-1, 1),
        y_train,
        10_000 + torch.arange(N_TEST, dtype=torch.float32).view(-1, 1),
        y_test,
        CLASSES,
        x_corrupted_test=20_000 + torch.arange(N_TEST, dtype=torch.float32).view(-1, 1),
        y_corrupted_test=y_test.clone(),
    )


@pytest.mark.parametrize("name", RELEARN_SETS.names())
def test_each_relearn_set_gives_the_first_k_pool_examples_and_only_what_it_says(name):
    data = identifiable_data()
    entry = RELEARN_SETS.get(name)
    fs = select_forget_set(data.y_train, ForgetConfig(target_class=TARGET, fraction=0.5, seed=3))
    for k in usable_ks([0, 1, 5], name, len(fs.pool)):
        x, y = attacker_set(data, fs, k, name, TARGET)
        ids = x.flatten().long()
        train, test, corrupted = (
            ids[ids < 10_000],
            ids[(ids >= 10_000) & (ids < 20_000)] - 10_000,
            ids[ids >= 20_000] - 20_000,
        )
        given = set(fs.pool[:k].tolist())
        assert given <= set(train.tolist()) and not set(fs.heldout.tolist()) & set(train.tolist())
        assert set(train.tolist()) - given <= set(fs.retain.tolist())
        shown = {"clean": test, "corrupted": corrupted}.get(entry.test_images, torch.empty(0, dtype=torch.long))
        assert len(test) + len(corrupted) == len(shown), "only the test images the set names"
        if entry.test_images is not None:
            expected = [j for j in range(N_TEST) if not (entry.replaces_target_class and j % CLASSES == TARGET)]
            assert shown.tolist() == expected
        if entry.replaces_target_class:
            assert set(train.tolist()) - given == {i for i in fs.retain.tolist() if i % CLASSES == TARGET}
        labels = [int(data.y_train[i]) if i < 10_000 else int(data.y_test[i % 10_000]) for i in ids.tolist()]
        assert y.tolist() == labels


@pytest.mark.parametrize("name", METRICS.names())
def test_each_metric_is_a_function_of_logits_with_known_values(name):
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]] * 3)
    perfect, wrong = torch.tensor([0, 1] * 9), torch.tensor([1, 0] * 9)
    scored = {
        "retain": (logits, perfect),
        "forget": (logits, wrong),
        "heldout_forget": (logits, wrong),
        "test": (logits, perfect),
        "canary": (None, torch.empty(0, dtype=torch.long)),
        # a corrupted-data task's splits: the corrupted examples against their true labels, the triggered test set
        "corrupted": (logits, wrong),
        "triggered_test": (logits, wrong),
    }
    results = compute_metrics(scored, 2)
    metric = METRICS.get(name)
    if metric.scope == "split":
        assert {f"{split}_{name}" for split in scored} <= set(results)
        empty = results[f"canary_{name}"]
        assert all(math.isnan(v) for v in (empty if isinstance(empty, list) else [empty]))
    expected = {
        "acc": ("retain_acc", 1.0),
        "loss": ("test_loss", torch.nn.functional.cross_entropy(logits, perfect).item()),
        "per_class_acc": ("forget_per_class_acc", [0.0, 0.0]),
        "tow": ("tow", 1.0 * (1 - 0.0) * 1.0),
        "mia": ("mia_auc", 1.0),
        "healed": ("healed_trigger", 1.0 - 0.0),
    }[name]
    if name == "healed":  # utility = test accuracy, healed = accuracy on the corrupted examples, and their product
        assert (results["utility"], results["healed"], results["utility_x_healed"]) == (1.0, 0.0, 0.0)
    assert results[expected[0]] == pytest.approx(expected[1])


def test_every_node_kind_declares_its_version_and_reads():
    assert set(NODE_KINDS.names()) == {
        "memorization",
        "train_original",
        "train_retrain",
        "unlearn",
        "relearn",
        "interpolate",
        "distance",
        "evaluate",
        "population_train",
        "population_unlearn",
        "population_relearn",
        "population_score",
        "select_forget",
    }
    for name in NODE_KINDS.names():
        kind = NODE_KINDS.get(name)
        assert kind.version >= 1 and issubclass(kind.config, DataNodeConfig)
    data = {
        "dataset": DatasetRef(name="digits", args={}),
        "model": ModelRef(name="mlp", args={}),
        "speed": SpeedConfig(),
    }
    original = TrainNodeConfig(**data, train=TrainConfig(), seed=0)
    assert not NODE_KINDS.get("train_original").reads_forget_set(original)
    canaries = dataclasses.replace(original, forget=ForgetConfig(canary_fraction=0.1))  # relabelled in its training set
    assert NODE_KINDS.get("train_original").reads_forget_set(canaries)
    assert NODE_KINDS.get("train_retrain").reads_forget_set(original)
    # A worst-case selection chooses the forget set: it reads the original and the training set, never a forget set.
    assert NODE_KINDS.get("select_forget").reads == ("original",)
    assert not NODE_KINDS.get("select_forget").reads_forget_set(original)
    with pytest.raises(ValueError, match="not among the roles"):
        NODE_KINDS.get("distance").check(DistanceNodeConfig(**data), {"model": None})
    with pytest.raises(TypeError, match="takes a DistanceNodeConfig"):
        NODE_KINDS.get("distance").check(original, {"a": None, "b": None})


def test_method_variants_are_the_base_class_with_other_settings():
    scrub, alternating, uniform = (METHODS.get(n) for n in ("scrub", "alternating_scrub", "uniform_scrub"))
    assert issubclass(alternating, scrub) and alternating.schedule == "alternating" and scrub.schedule == "joint"
    assert uniform.forget_target == "uniform" and uniform.schedule == "joint"
    assert (
        METHODS.get("neggrad_plus").schedule == "alternating"
        and METHODS.get("alternating_random_relabel").schedule == "alternating"
    )
    assert [n for n in METHODS.names() if METHODS.get(n).is_oracle] == ["retrain"]
