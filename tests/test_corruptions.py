"""The corruptions of REM's task space (workloads/corruptions.py): each changes the examples it says with the labels it
says, is a function of its seed, enters the content key of every node that reads the training set, and discovers its
examples in one seeded order so that the subset found at a higher rate holds the one found at a lower rate. The
reference's choices, each under its name: the trigger drawn from every class and stamped after augmentation, its test
split with true labels, healed on random patched images, the random swap's key-order slip, the swap's utility on the
other classes; at their old values the new arguments leave node sections and keys as they were."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from orchestrator.plan.identity import node_identity
from orchestrator.spec.corruption import corruption_sections
from orchestrator.spec.schema import CorruptionKindSpec, CorruptionSpec
from workloads.corruptions import (
    CORRUPTIONS,
    RandomSwap,
    RandomSwapConfig,
    StampAfterAugment,
    discovered_forget_set,
    draw_corruption,
    forget_set_for,
    undiscovered_view,
)
from workloads.data.base import Dataset
from workloads.data.cifar import crop_flip
from workloads.metrics import METRICS, accuracy
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


# The data, model, speed, recipe and seed of the training nodes whose keys the tests below compare.
BASE = {
    "dataset": DatasetRef(name="mnist1d", args={}),
    "model": ModelRef(name="cnn1d", args={}),
    "speed": SpeedConfig(),
    "train": TrainConfig(epochs=1, batch_size=8, lr=0.01),
    "seed": 1,
}


def test_the_corruption_is_in_the_key_of_the_original_and_the_rate_in_the_key_of_the_retrained_baseline():
    y = labelled_data().y_train
    base = BASE
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


# -- the reference's choices (if-loops/rem, src/exp_datasets.py; docs/rem.md) ----------------------------------------
def test_the_reference_draws_the_trigger_from_every_class_and_heals_the_target_classs_own_examples():
    data = labelled_data()
    corruption = draw_corruption(data.y_train, CLASSES, section("poison_trigger", size=200, target_class=2))
    assert (corruption.true_labels != 2).all()  # the old draw: other classes only
    reference = draw_corruption(
        data.y_train, CLASSES, section("poison_trigger", size=200, target_class=2, draw="all_classes")
    )
    already = (reference.true_labels == 2).float().mean().item()
    assert 0.1 < already < 0.4 and (reference.labels == 2).all()  # about 1/C already the target; all patched
    after = reference.apply(data)
    x_rows, y_rows = changed_rows(data, after)
    assert x_rows == set(reference.index.tolist()) and y_rows == set(
        reference.index[reference.true_labels != 2].tolist()
    )
    # healed counts a target-class example as healed when it is predicted as its (true) target class.
    assert torch.equal(reference.evaluation_splits(after)["corrupted"][1], reference.true_labels)


def test_the_reference_test_split_is_every_test_image_patched_with_its_true_label():
    data = labelled_data(images=True)
    trigger = section("poison_trigger", target_class=2, test_split="true_label")
    after = draw_corruption(data.y_train, CLASSES, trigger).apply(data)
    splits = draw_corruption(data.y_train, CLASSES, trigger).evaluation_splits(after)
    assert "triggered_test" not in splits
    x, y = splits["patched_test"]
    assert torch.equal(y, data.y_test) and (x[..., -3:, -3:] == float(data.x_train.max())).all()
    # healed_trigger is accuracy there: the target class's own test images count when predicted as the target.
    logits = F.one_hot(torch.full_like(y, 2), CLASSES).float()  # a model the trigger still fools everywhere
    scored = {"test": (logits, y), "corrupted": (logits, y), "patched_test": (logits, y)}
    results = measures(scored)
    assert results["healed_trigger"] == pytest.approx((y == 2).float().mean().item())
    old = {
        "test": (logits, y),
        "corrupted": (logits, y),
        "triggered_test": (logits[y != 2], torch.full_like(y, 2)[y != 2]),
    }
    assert measures(old)["healed_trigger"] == 0.0


def measures(scored: dict) -> dict:
    """Each split's accuracy and the `healed` measures of those logits (metrics.healed)."""
    results = {f"{split}_acc": accuracy(logits, y, CLASSES) for split, (logits, y) in scored.items()}
    return results | METRICS.get("healed").compute(scored, results)


def stamped(data, corruption_section, augment):
    """The corrupted training set's augmentation of every row, with a fixed generator."""
    data = dataclasses.replace(data, augment=augment)
    corruption = draw_corruption(data.y_train, CLASSES, corruption_section)
    after = corruption.apply(data)
    return corruption, after, after.augment(after.x_train, torch.Generator().manual_seed(7))


@pytest.mark.parametrize("every_row", [False, True], ids=["cpu-way", "gpu-way"])
def test_stamped_after_augmentation_the_patch_is_always_bottom_right_and_clean_rows_are_untouched(
    every_row, monkeypatch
):
    monkeypatch.setattr(StampAfterAugment, "hash_every_row", every_row)
    data = labelled_data(images=True)
    data.x_train[5, :, -3:, -3:] = data.x_train.max()  # a clean image whose corner already holds the patch value
    flip_and_crop = crop_flip(padding=2)
    args = {"size": 40, "target_class": 2, "draw": "all_classes"}
    corruption, after, out = stamped(data, section("poison_trigger", stamp="after_augment", **args), flip_and_crop)
    rows = corruption.index
    assert 5 not in rows.tolist()
    top = float(data.x_train.max())
    expected = flip_and_crop(data.x_train.clone(), torch.Generator().manual_seed(7))  # the clean images, augmented
    expected[rows, :, -3:, -3:] = top  # ... then patched
    assert torch.equal(out, expected)
    # Written before augmentation (the old order), the patch moves with the crop and flip.
    _, _, moved = stamped(data, section("poison_trigger", **args), flip_and_crop)
    assert not (moved[rows][..., -3:, -3:] == top).all()
    assert torch.equal(moved[5], expected[5])  # clean rows: the same augmentation either way


def test_healed_on_random_patched_images_is_the_references_slip_reproduced_by_name():
    data = labelled_data(images=True)
    trigger = section("poison_trigger", size=40, target_class=2, healed_on="random_patched")
    corruption = draw_corruption(data.y_train, CLASSES, trigger)
    x, y = corruption.evaluation_splits(corruption.apply(data))["corrupted"]
    assert len(y) == 40 and (x[..., -3:, -3:] == float(data.x_train.max())).all()
    rows = (x[:, 0, 0, 0] * 400).round().long()  # row i of labelled_data is all i / 400
    assert torch.equal(y, data.y_train[rows])  # true labels, poisoned rows included
    assert set(rows.tolist()) != set(corruption.index.tolist())


def test_the_references_random_swap_leaves_about_one_in_c_labels_unchanged_by_its_key_order():
    labels = labelled_data().y_train
    own = RandomSwap(RandomSwapConfig()).choose(labels, CLASSES, 200, torch.Generator().manual_seed(3))
    keyed_order = RandomSwap(RandomSwapConfig("reference_key_order")).choose(
        labels, CLASSES, 200, torch.Generator().manual_seed(3)
    )
    assert (own[1] != labels[own[0]]).all()  # each drawn example gets another label
    # The same draw and the same new labels, but the k-th label goes to the k-th smallest index.
    assert torch.equal(keyed_order[0], own[0].sort().values) and torch.equal(keyed_order[1], own[1])
    unchanged = (keyed_order[1] == labels[keyed_order[0]]).float().mean().item()
    assert 0.15 < unchanged < 0.35  # (1 - 1/C) / (C - 1) = 1/4 expected
    corruption = draw_corruption(
        labels, CLASSES, section("random_swap", size=200, seed=3, relabel="reference_key_order")
    )
    assert len(corruption.index) == 200 and (corruption.labels == corruption.true_labels).any()  # kept as corrupted


def test_the_references_utility_for_the_swap_is_test_accuracy_on_the_other_classes():
    data = labelled_data()
    swap = section("interclass_swap", size=20, class_a=1, class_b=3, utility="other_classes")
    corruption = draw_corruption(data.y_train, CLASSES, swap)
    splits = corruption.evaluation_splits(corruption.apply(data))
    x, y = splits["test_unswapped"]
    assert set(y.tolist()) == {0, 2} and len(y) == int(((data.y_test == 0) | (data.y_test == 2)).sum())
    test_y = data.y_test
    logits = F.one_hot(torch.where((test_y == 1) | (test_y == 3), 0, test_y), CLASSES).float()  # wrong on 1 and 3
    scored = {
        "test": (logits, test_y),
        "corrupted": (logits, test_y),
        "test_unswapped": (logits[(test_y == 0) | (test_y == 2)], y),
    }
    results = measures(scored)
    assert results["utility"] == 1.0 and results["test_acc"] == 0.5
    plain = draw_corruption(data.y_train, CLASSES, section("interclass_swap", size=20, class_a=1, class_b=3))
    assert "test_unswapped" not in plain.evaluation_splits(plain.apply(data))


def test_new_arguments_at_their_old_values_leave_the_node_sections_and_keys_as_they_were():
    kinds = [
        CorruptionKindSpec("poison_trigger", {"target_class": 0, "patch": 3}),
        CorruptionKindSpec("interclass_swap", {"class_a": 3, "class_b": 5}),
        CorruptionKindSpec("random_swap", {}),
    ]
    old = corruption_sections(CorruptionSpec(kinds=kinds), 43)
    assert [s["args"] for s in old] == [
        {"target_class": 0, "patch": 3, "value": None},
        {"class_a": 3, "class_b": 5},
        {},
    ]
    explicit = [
        CorruptionKindSpec(
            "poison_trigger",
            {"draw": "other_classes", "stamp": "before_augment", "test_split": "not_target", "healed_on": "corrupted"},
        ),
        CorruptionKindSpec("interclass_swap", {"utility": "all_classes"}),
        CorruptionKindSpec("random_swap", {"relabel": "own_label"}),
    ]
    assert corruption_sections(CorruptionSpec(kinds=explicit), 43) == old
    reference = corruption_sections(
        CorruptionSpec(kinds=[CorruptionKindSpec("poison_trigger", {"draw": "all_classes"})]), 43
    )
    assert reference[0]["args"]["draw"] == "all_classes"
    y = labelled_data().y_train
    original = lambda section: TrainNodeConfig(**BASE, corruption=CorruptionRef(**(section | {"size": 40})))
    assert key("train_original", original(old[0]), y) != key("train_original", original(reference[0]), y)
