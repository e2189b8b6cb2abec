"""The relearning attack: fine-tune a model on an attacker's set that holds the first k forget examples of the attack
pool, and watch accuracy on the held-out forget examples (never trained on, whatever k is) come back.

The attacker's set, by `relearn_set` (the reference study's relearn example types):

- `retain`: the retain set + the first k pool examples;
- `only_forget`: the first k pool examples alone (k = 0 is an empty set: a ValueError, see `attack_indices`);
- `test`: the test set + the first k pool examples;
- `corrupted_test`: the dataset's corrupted copy of the test set + the first k pool examples;
- `test+retain_cls`, `corrupted_test+retain_cls`: as `test` / `corrupted_test`, but the target class's test images
  replaced by that class's retain images (so these need a forget set drawn from one target class).

The set depends on the data, the forget set, k and the target class only, never on the model, so the unlearned models,
the retrained control and the original are all attacked with the same examples. The held-out forget examples and the
canaries are never in it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch
from torch import nn

from workloads.data import Dataset, corrupted_test_key, no_corrupted_test_message, provides_corrupted_test
from workloads.forget import ForgetSet
from workloads.train import BatchStream, adam_with_cosine, evaluate, fit, generator_for, predict, steps_for

RELEARN_SETS = ("retain", "only_forget", "test", "corrupted_test", "test+retain_cls", "corrupted_test+retain_cls")


def uses_target_class(relearn_set: str) -> bool:
    return relearn_set.endswith("+retain_cls")


def uses_test_set(relearn_set: str) -> bool:
    return relearn_set.startswith(("test", "corrupted_test"))


def uses_corrupted_test(relearn_set: str) -> bool:
    return relearn_set.startswith("corrupted_test")


@dataclass
class RelearnConfig:
    relearn_set: str = "retain"
    lr: float = 1e-5
    final_lr: float = 1e-6  # cosine decay from lr to final_lr
    weight_decay: float = 0.0
    epochs: float = 10.0  # full-training-set convention, as for unlearning
    batch_size: int = 128
    eval_every: int = 10  # steps between evaluations of the held-out forget accuracy
    report_last: int = 50  # the reported accuracy is the mean of this many final evaluations


def _check_set(relearn_set: str) -> None:
    if relearn_set not in RELEARN_SETS:
        raise ValueError(f"relearn_set must be one of {RELEARN_SETS}, got {relearn_set!r}")


def usable_ks(ks: Iterable[int], relearn_set: str, pool_size: Optional[int] = None) -> list[int]:
    """The k values of a grid that give the attacker a non-empty set within the pool (as the reference: `only_forget`
    starts at k = 1)."""
    _check_set(relearn_set)
    return [k for k in ks if (pool_size is None or k <= pool_size) and not (relearn_set == "only_forget" and k == 0)]


def relearn_set_problem(relearn_set: str, target_class: Optional[int], dataset: str = "",
                        dataset_config: Any = None) -> Optional[str]:
    """Why `relearn_set` cannot run with this forget config and dataset (None when it can): checked before any job,
    and again when the set is built."""
    if relearn_set not in RELEARN_SETS:
        return f"must be one of {', '.join(RELEARN_SETS)}, got {relearn_set!r}"
    if uses_target_class(relearn_set) and target_class is None:
        return (f"{relearn_set} replaces the target class's test images by its retain images, so it needs a forget set "
                f"drawn from one class: set forget.target_class (it is null)")
    if uses_corrupted_test(relearn_set) and dataset_config is not None and not provides_corrupted_test(dataset_config):
        return no_corrupted_test_message(dataset or "the dataset", corrupted_test_key(dataset_config), f"relearn_set {relearn_set}")
    return None


def _check_target_class(forget_set: ForgetSet, labels: torch.Tensor, relearn_set: str, target_class: Optional[int]) -> int:
    problem = relearn_set_problem(relearn_set, target_class)
    if problem is not None:
        raise ValueError(f"relearn_set {problem}")
    forget_labels = labels[forget_set.forget.to(labels.device)]
    if not bool((forget_labels == target_class).all()):
        found = sorted(set(forget_labels.unique().tolist()))
        raise ValueError(f"{relearn_set} needs a forget set drawn from the target class {target_class}, but the forget "
                         f"set holds classes {found}")
    return int(target_class)


def attack_indices(forget_set: ForgetSet, k: int, relearn_set: str, labels: Optional[torch.Tensor] = None,
                   target_class: Optional[int] = None) -> torch.Tensor:
    """Training-set indices in the attacker's set: the part drawn from the training set (for the test-based sets, the
    test images come on top, see `attacker_set`). `labels` (the training labels) and `target_class` are needed by
    the `+retain_cls` sets only.

    `only_forget` with k = 0 would train on nothing: a ValueError naming the set and k (`usable_ks` drops it from a
    grid, as the reference does)."""
    _check_set(relearn_set)
    pool = forget_set.pool
    if isinstance(k, bool) or not 0 <= k <= len(pool):
        raise ValueError(f"k={k} must be in 0..{len(pool)}, the attack pool of {len(pool)} forget examples")
    if relearn_set == "only_forget" and k == 0:
        raise ValueError("relearn_set only_forget with k=0 would train on no example at all: drop 0 from relearn.k "
                         "for this set (usable_ks does, as the reference study does)")
    given = pool[:k]
    if relearn_set == "retain":
        index = torch.cat([forget_set.retain, given])
    elif uses_target_class(relearn_set):
        if labels is None:
            raise ValueError(f"{relearn_set} needs the training labels to find the target class's retain images")
        target = _check_target_class(forget_set, labels, relearn_set, target_class)
        retain = forget_set.retain
        index = torch.cat([retain[(labels[retain.to(labels.device)] == target).cpu()], given])
    else:  # only_forget, test, corrupted_test: the training set contributes the k forget examples alone
        index = given
    # Whatever the set, recovery is measured on examples the attacker never saw, and canaries are not given away.
    if torch.isin(index, torch.cat([forget_set.heldout, forget_set.canaries])).any():
        raise AssertionError("attacker's set holds a held-out forget example or a canary")
    return index


def attacker_set(data: Dataset, forget_set: ForgetSet, k: int, relearn_set: str,
                 target_class: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacker's (x, y), on the data's device: the test-based part first (if any), then the training examples
    of `attack_indices` with their training labels. A pure function of its arguments (not of any model)."""
    index = attack_indices(forget_set, k, relearn_set, data.y_train, target_class).to(data.y_train.device)
    xs, ys = [], []
    if uses_test_set(relearn_set):
        x_test, y_test = (data.corrupted_test(f"relearn_set {relearn_set}") if uses_corrupted_test(relearn_set)
                          else (data.x_test, data.y_test))
        if uses_target_class(relearn_set):  # the target class's test images leave; its retain images are in `index`
            keep = y_test != target_class
            x_test, y_test = x_test[keep], y_test[keep]
        xs.append(x_test)
        ys.append(y_test)
    xs.append(data.x_train[index])
    ys.append(data.y_train[index])
    return torch.cat(xs), torch.cat(ys)


def relearn(model: nn.Module, data: Dataset, forget_set: ForgetSet, k: int, cfg: RelearnConfig, seed: int,
            target_class: Optional[int] = None) -> dict:
    """Fine-tunes `model` in place on the attacker's set for cfg.epochs passes' worth of steps *of the full training
    set* (whatever the attacker's set's size), measuring held-out forget accuracy every cfg.eval_every steps."""
    x, y = attacker_set(data, forget_set, k, cfg.relearn_set, target_class)
    heldout = forget_set.heldout.to(data.y_train.device)
    heldout_x, heldout_y = data.x_train[heldout], data.y_train[heldout]
    total = steps_for(cfg.epochs, len(data.y_train), cfg.batch_size)
    stream = BatchStream(x, y, cfg.batch_size, generator_for(seed, x.device))
    optimizer, schedule = adam_with_cosine(model, cfg.lr, cfg.weight_decay, total, cfg.final_lr / cfg.lr)
    accuracies = []  # device scalars; read back once at the end

    def measure(step: int) -> None:
        if step % cfg.eval_every == 0 or step == total:
            accuracies.append((step, (predict(model, heldout_x).argmax(1) == heldout_y).float().mean()))

    fit(model, stream, optimizer, schedule, total, after_step=measure)
    curve = [[step, acc.item()] for step, acc in accuracies]
    last = [acc for _, acc in curve[-cfg.report_last:]]
    return {
        "curve": curve,
        "heldout_forget_acc": sum(last) / len(last),
        "test_acc": evaluate(model, data.x_test, data.y_test, data.num_classes)["acc"],
        "steps": total,
        "train_examples": len(y),
        "relearn_set": cfg.relearn_set,
        "k": k,
    }
