"""What a relearning attacker trains on, registered by name (`relearn.relearn_set`): the reference study's relearn
example types. Every set holds the first k examples of the attack pool (`given`); each entry says what comes with
them, as training-set indices, and whether the (clean or corrupted) test images come on top:

- `retain`: the retain set + the k given examples;
- `only_forget`: the k given examples alone (so k starts at 1);
- `test`: the test set + the k given examples;
- `corrupted_test`: the dataset's corrupted copy of the test set + the k given examples;
- `test+retain_cls`, `corrupted_test+retain_cls`: as `test` / `corrupted_test`, but the target class's test images
  replaced by that class's retain images (so these need a forget set drawn from one target class).

A set depends on the data, the forget set, k and the target class only, never on the model, so the unlearned models,
the retrained control and the original are all attacked with the same examples. The held-out forget examples and the
canaries are never in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional

import torch

from workloads.data import Dataset, corrupted_test_key, no_corrupted_test_message, provides_corrupted_test
from workloads.forget import ForgetSet
from workloads.registry import Registry

# (forget set, the k given pool examples, training labels, target class) -> training-set indices of the attacker's set
TrainExamples = Callable[[ForgetSet, torch.Tensor, Optional[torch.Tensor], Optional[int]], torch.Tensor]


@dataclass(frozen=True)
class RelearnSet:
    train_examples: TrainExamples
    test_images: Optional[str] = None  # None, "clean" or "corrupted": test images the attacker trains on too
    replaces_target_class: bool = False  # the target class's test images are swapped for its retain images
    min_k: int = 0


RELEARN_SETS: Registry[RelearnSet] = Registry("relearn set")


def register_relearn_set(name: str, **options: Any):
    def add(train_examples: TrainExamples) -> TrainExamples:
        RELEARN_SETS.register(name)(RelearnSet(train_examples, **options))
        return train_examples

    return add


def target_class_retain(forget_set: ForgetSet, labels: torch.Tensor, target_class: int) -> torch.Tensor:
    retain = forget_set.retain
    return retain[(labels[retain.to(labels.device)] == target_class).cpu()]


@register_relearn_set("retain")
def retain_and_given(forget_set, given, labels, target_class):
    return torch.cat([forget_set.retain, given])


@register_relearn_set("only_forget", min_k=1)
def given_only(forget_set, given, labels, target_class):
    return given


register_relearn_set("test", test_images="clean")(given_only)
register_relearn_set("corrupted_test", test_images="corrupted")(given_only)


@register_relearn_set("test+retain_cls", test_images="clean", replaces_target_class=True)
def target_retain_and_given(forget_set, given, labels, target_class):
    return torch.cat([target_class_retain(forget_set, labels, target_class), given])


register_relearn_set("corrupted_test+retain_cls", test_images="corrupted", replaces_target_class=True)(
    target_retain_and_given
)


def uses_corrupted_test(name: str) -> bool:
    return RELEARN_SETS.get(name).test_images == "corrupted"


def usable_ks(ks: Iterable[int], name: str, pool_size: Optional[int] = None) -> list[int]:
    """The k values of a grid that give the attacker a non-empty set within the pool (as the reference: `only_forget`
    starts at k = 1)."""
    entry = RELEARN_SETS.get(name)
    return [k for k in ks if (pool_size is None or k <= pool_size) and k >= entry.min_k]


def relearn_set_problem(
    name: str, target_class: Optional[int], dataset: str = "", dataset_config: Any = None
) -> Optional[str]:
    """Why `name` cannot run with this forget config and dataset (None when it can): checked before any job, and
    again when the set is built."""
    if name not in RELEARN_SETS:
        return f"must be one of {', '.join(RELEARN_SETS.names())}, got {name!r}"
    entry = RELEARN_SETS.get(name)
    if entry.replaces_target_class and target_class is None:
        return (
            f"{name} replaces the target class's test images by its retain images, so it needs a forget set "
            f"drawn from one class: set forget.target_class (it is null)"
        )
    if entry.test_images == "corrupted" and dataset_config is not None and not provides_corrupted_test(dataset_config):
        return no_corrupted_test_message(
            dataset or "the dataset", corrupted_test_key(dataset_config), f"relearn_set {name}"
        )
    return None


def _check_target_class(forget_set: ForgetSet, labels: torch.Tensor, name: str, target_class: Optional[int]) -> None:
    problem = relearn_set_problem(name, target_class)
    if problem is not None:
        raise ValueError(f"relearn_set {problem}")
    forget_labels = labels[forget_set.forget.to(labels.device)]
    if not bool((forget_labels == target_class).all()):
        found = sorted(set(forget_labels.unique().tolist()))
        raise ValueError(
            f"{name} needs a forget set drawn from the target class {target_class}, but the forget "
            f"set holds classes {found}"
        )


def attack_indices(
    forget_set: ForgetSet, k: int, name: str, labels: Optional[torch.Tensor] = None, target_class: Optional[int] = None
) -> torch.Tensor:
    """Training-set indices in the attacker's set (for the test-based sets the test images come on top, see
    `attacker_set`). `labels` (the training labels) and `target_class` are needed by the `+retain_cls` sets only.
    A k below the set's `min_k` would train on nothing: a ValueError naming the set and k (`usable_ks` drops it)."""
    if name not in RELEARN_SETS:
        raise ValueError(f"relearn_set must be one of {', '.join(RELEARN_SETS.names())}, got {name!r}")
    entry, pool = RELEARN_SETS.get(name), forget_set.pool
    if isinstance(k, bool) or not 0 <= k <= len(pool):
        raise ValueError(f"k={k} must be in 0..{len(pool)}, the attack pool of {len(pool)} forget examples")
    if k < entry.min_k:
        raise ValueError(
            f"relearn_set {name} with k={k} would train on no example at all: drop {k} from relearn.k "
            "for this set (usable_ks does, as the reference study does)"
        )
    if entry.replaces_target_class:
        if labels is None:
            raise ValueError(f"{name} needs the training labels to find the target class's retain images")
        _check_target_class(forget_set, labels, name, target_class)
    index = entry.train_examples(forget_set, pool[:k], labels, target_class)
    # Whatever the set, recovery is measured on examples the attacker never saw, and canaries are not given away.
    if torch.isin(index, torch.cat([forget_set.heldout, forget_set.canaries])).any():
        raise AssertionError("attacker's set holds a held-out forget example or a canary")
    return index


def attacker_set(
    data: Dataset, forget_set: ForgetSet, k: int, name: str, target_class: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacker's (x, y), on the data's device: the test images first (if the set has them), then the training
    examples of `attack_indices` with their training labels. A pure function of its arguments (not of any model)."""
    index = attack_indices(forget_set, k, name, data.y_train, target_class).to(data.y_train.device)
    entry = RELEARN_SETS.get(name)
    xs, ys = [], []
    if entry.test_images is not None:
        x_test, y_test = (
            data.corrupted_test(f"relearn_set {name}")
            if entry.test_images == "corrupted"
            else (data.x_test, data.y_test)
        )
        if entry.replaces_target_class:  # the target class's test images leave; its retain images are in `index`
            keep = y_test != target_class
            x_test, y_test = x_test[keep], y_test[keep]
        xs.append(x_test)
        ys.append(y_test)
    xs.append(data.x_train[index])
    ys.append(data.y_train[index])
    return torch.cat(xs), torch.cat(ys)
