"""The relearning attack: fine-tune a model on an attacker's set that holds the first k forget examples of the attack
pool (what else it holds is the `relearn_set`, workloads/relearn_sets.py), and watch accuracy on the held-out forget
examples (never trained on, whatever k is) come back. Both held-out forget accuracy and test accuracy are measured
every `eval_every` steps and reported, as in the reference's figures, as the mean of the last `report_last`
evaluations (the final values are kept beside them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import nn

from workloads.config import added_later
from workloads.data import Dataset
from workloads.evaluation import EvaluationConfig, scored_images
from workloads.forget import ForgetSet
from workloads.relearn_sets import attacker_set
from workloads.train import BatchStream, adam_with_cosine, fit, generator_for, predict, steps_for


@dataclass
class RelearnConfig:
    relearn_set: str = "retain"
    lr: float = 1e-5
    final_lr: float = 1e-6  # cosine decay from lr to final_lr
    weight_decay: float = 0.0
    epochs: float = 10.0  # full-training-set convention, as for unlearning
    batch_size: int = 128
    eval_every: int = 10  # steps between evaluations of the held-out forget accuracy
    report_last: int = 50  # the reported accuracies are the means of this many final evaluations
    # Train on the attacker's set through the dataset's training augmentation, as the reference does.
    augment: bool = added_later(False)


def _mean_of_last(curve: list[list[float]], n: int) -> float:
    last = [acc for _, acc in curve[-n:]]
    return sum(last) / len(last)


def relearn(
    model: nn.Module,
    data: Dataset,
    forget_set: ForgetSet,
    k: int,
    cfg: RelearnConfig,
    seed: int,
    target_class: Optional[int] = None,
    evaluation: Optional[EvaluationConfig] = None,
) -> dict:
    """Fine-tunes `model` in place on the attacker's set for cfg.epochs passes' worth of steps *of the full training
    set* (whatever the attacker's set's size), measuring held-out forget and test accuracy every cfg.eval_every
    steps."""
    x, y = attacker_set(data, forget_set, k, cfg.relearn_set, target_class)
    heldout = forget_set.heldout.to(data.y_train.device)
    evaluation = evaluation or EvaluationConfig()
    heldout_x, heldout_y = scored_images(data.x_train[heldout], evaluation, data.augment), data.y_train[heldout]
    total = steps_for(cfg.epochs, len(data.y_train), cfg.batch_size)
    stream = BatchStream(x, y, cfg.batch_size, generator_for(seed), data.augment if cfg.augment else None)
    optimizer, schedule = adam_with_cosine(model, cfg.lr, cfg.weight_decay, total, cfg.final_lr / cfg.lr)
    accuracies = []  # (step, held-out forget, test) as device scalars; read back once at the end
    correct = lambda xs, ys: (predict(model, xs).argmax(1) == ys).float().mean()

    def measure(step: int) -> None:
        if step % cfg.eval_every == 0 or step == total:
            accuracies.append((step, correct(heldout_x, heldout_y), correct(data.x_test, data.y_test)))

    fit(model, stream, optimizer, schedule, total, after_step=measure)
    curve = [[step, acc.item()] for step, acc, _ in accuracies]
    test_curve = [[step, acc.item()] for step, _, acc in accuracies]
    return {
        "curve": curve,
        "test_curve": test_curve,
        "heldout_forget_acc": _mean_of_last(curve, cfg.report_last),
        "test_acc": _mean_of_last(test_curve, cfg.report_last),
        "heldout_forget_acc_final": curve[-1][1],
        "test_acc_final": test_curve[-1][1],
        "steps": total,
        "train_examples": len(y),
        "relearn_set": cfg.relearn_set,
        "k": k,
    }
