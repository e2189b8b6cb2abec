"""The corruptions of REM's task space (workloads/corruptions.py): each changes the examples it says with the labels it
says, is a function of its seed, enters the content key of every node that reads the training set, and discovers its
examples in one seeded order so that the subset found at a higher rate holds the one found at a lower rate."""

import pytest
import torch

from orchestrator.plan.identity import node_identity
from workloads.corruptions import CORRUPTIONS, discovered_forget_set, draw_corruption, forget_set_for, undiscovered_view
from workloads.data.base import Dataset
from workloads.nodes import CorruptionRef, DatasetRef, DiscoveredForget, ModelRef, TrainNodeConfig
from workloads.speed import SpeedConfig
from workloads.train import TrainConfig

CLASSES = 4


def labelled_data(n=400, length=12, images=False) -> Dataset:
    """Labels in a known pattern (y = i mod 4) and inputs that say which example they are (row i is all i / n)."""
    y = torch.arange(n) % CLASSES
    x = (torch.arange(n, dtype=torch.float32) / n).view(n, 1, 1).expand(n, 1, length).clone()
    if images:
        x = x.view(n, 1, 1, length).expand(n, 3, length, length).clone()
    return Dataset(x_train=x, y_train=y, x_test=x[:40].clone(), y_test=y[:40].clone(), num_classes=CLASSES)


def section(name, size=40, seed=0, **args):
    return {"name": name, "size": size, "seed": seed, "args": args}


def changed_rows(before: Dataset, after: Dataset) -> tuple[set, set]:
    x = (before.x_train != after.x_train).flatten(1).any(1).nonzero().flatten().tolist()
    y = (before.y_train != after.y_train).nonzero().flatten().tolist()
    return set(x), set(y)


def test_the_registry_holds_the_three_corruptions_from_high_to_low_regularity():
    assert {n: CORRUPTIONS.get(n).regularity for n in CORRUPTIONS.names()} == {
        "poison_trigger": "high",
        "interclass_swap": "medium",
        "random_swap": "low",
    }


@pytest.mark.parametrize("images", [False, True], ids=["1d", "image"])
def test_poison_trigger_patches_the_end_of_examples_outside_the_target_and_labels_them_the_target(images):
    data = labelled_data(images=images)
    corruption = draw_corruption(data.y_train, CLASSES, section("poison_trigger", target_class=2, patch=3))
    chosen = set(corruption.index.tolist())
    assert len(chosen) == 40 and (data.y_train[corruption.index] != 2).all()
    assert (corruption.labels == 2).all() and torch.equal(corruption.true_labels, data.y_train[corruption.index])
    after = corruption.apply(data)
    x_rows, y_rows = changed_rows(data, after)
    assert x_rows == chosen and y_rows == chosen  # nothing else touched
    top = float(data.x_train.max())
    patched = after.x_train[corruption.index]
    if images:  # the bottom-right 3 x 3 pixels of every channel
        assert (patched[..., -3:, -3:] == top).all() and torch.equal(
            patched[..., :-3, :], data.x_train[corruption.index][..., :-3, :]
        )
    else:  # the last 3 samples
        assert (patched[..., -3:] == top).all() and torch.equal(
            patched[..., :-3], data.x_train[corruption.index][..., :-3]
        )
    # The test split of the trigger: every other class's test examples, patched, labelled the target.
    splits = corruption.evaluation_splits(after)
    x_trig, y_trig = splits["triggered_test"]
    assert len(y_trig) == int((data.y_test != 2).sum()) and (y_trig == 2).all()
    assert torch.equal(splits["corrupted"][1], data.y_train[corruption.index])  # healed is measured against true labels


def test_interclass_swap_takes_the_first_examples_of_each_class_and_swaps_their_labels():
    data = labelled_data()
    corruption = draw_corruption(data.y_train, CLASSES, section("interclass_swap", size=20, class_a=1, class_b=3))
    firsts = {c: (data.y_train == c).nonzero().flatten()[:10].tolist() for c in (1, 3)}
    assert set(corruption.index.tolist()) == set(firsts[1]) | set(firsts[3])
    after = corruption.apply(data)
    assert (after.y_train[firsts[1]] == 3).all() and (after.y_train[firsts[3]] == 1).all()
    x_rows, y_rows = changed_rows(data, after)
    assert x_rows == set() and y_rows == set(firsts[1]) | set(firsts[3])  # labels only


def test_random_swap_gives_random_examples_a_wrong_label():
    data = labelled_data()
    corruption = draw_corruption(data.y_train, CLASSES, section("random_swap", size=60))
    after = corruption.apply(data)
    x_rows, y_rows = changed_rows(data, after)
    assert x_rows == set() and y_rows == set(corruption.index.tolist()) and len(y_rows) == 60
    assert (corruption.labels != corruption.true_labels).all()
    assert corruption.index.max() >= 200  # drawn over the whole set, not its first rows


@pytest.mark.parametrize(
    "name, args", [("poison_trigger", {}), ("interclass_swap", {"class_a": 1, "class_b": 3}), ("random_swap", {})]
)
def test_each_corruption_is_a_function_of_its_seed(name, args):
    y = labelled_data().y_train
    a, b = (draw_corruption(y, CLASSES, section(name, seed=s, **args)) for s in (5, 5))
    other = draw_corruption(y, CLASSES, section(name, seed=6, **args))
    assert torch.equal(a.identity, b.identity)
    assert not torch.equal(a.identity, other.identity)  # another discovery order (and, drawn at random, other examples)


def test_the_discovered_subsets_nest_across_rates():
    corruption = draw_corruption(labelled_data().y_train, CLASSES, section("random_swap", size=100, seed=3))
    found = {rate: set(corruption.discovered(rate).tolist()) for rate in (0.1, 0.2, 0.5, 1.0)}
    assert [len(found[r]) for r in (0.1, 0.2, 0.5, 1.0)] == [10, 20, 50, 100]
    assert found[0.1] <= found[0.2] <= found[0.5] <= found[1.0] == set(corruption.index.tolist())


def test_the_forget_set_is_the_discovered_subset_and_undiscovered_corruptions_stay_in_the_retain_set():
    corruption = draw_corruption(labelled_data().y_train, CLASSES, section("random_swap", size=100, seed=3))
    forget_set = discovered_forget_set(corruption, 0.3, 0.2, 400)
    assert torch.equal(forget_set.forget, corruption.index[:30]) and len(forget_set.retain) == 370
    assert set(corruption.index[30:].tolist()) <= set(forget_set.retain.tolist())
    assert torch.equal(forget_set.pool, forget_set.forget[:6])  # the attacker's pool: the first 20% discovered
    original = undiscovered_view(corruption, 400)
    assert len(original.forget) == 0 and len(original.retain) == 400 and original.corruption is corruption


def key(kind, config, y):
    return node_identity(kind, config, {}, forget_set_for(config.as_dict(), y, CLASSES)).key


def test_the_corruption_is_in_the_key_of_the_original_and_the_rate_in_the_key_of_the_retrained_baseline():
    y = labelled_data().y_train
    base = {
        "dataset": DatasetRef(name="mnist1d", args={}),
        "model": ModelRef(name="cnn1d", args={}),
        "speed": SpeedConfig(),
        "train": TrainConfig(epochs=1, batch_size=8, lr=0.01),
        "seed": 1,
    }
    original = lambda corruption: TrainNodeConfig(**base, corruption=CorruptionRef(**corruption))
    originals = [
        key("train_original", original(c), y)
        for c in (
            section("random_swap", seed=0),
            section("random_swap", seed=1),
            section("random_swap", size=20),
            section("poison_trigger"),
            section("poison_trigger", target_class=1),
        )
    ]
    assert len(set(originals)) == len(originals)  # each seed, size, kind and argument is another original
    assert originals[0] == key("train_original", original(section("random_swap", seed=0)), y)
    retrains = [
        key(
            "train_retrain",
            TrainNodeConfig(
                **base,
                corruption=CorruptionRef(**section("random_swap")),
                forget=DiscoveredForget(attack_pool_fraction=0.2, discovery_rate=r),
            ),
            y,
        )
        for r in (0.5, 1.0)
    ]
    assert len(set(retrains)) == 2 and not set(retrains) & set(originals)
