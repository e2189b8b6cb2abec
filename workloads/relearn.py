"""The relearning attack: fine-tune a model on an attacker's set that holds the first k forget examples of the attack
pool (what else it holds is the `relearn_set`, workloads/relearn_sets.py), and watch accuracy on the held-out forget
examples (never trained on, whatever k is) come back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import nn

from workloads.data import Dataset
from workloads.forget import ForgetSet
from workloads.relearn_sets import attacker_set
from workloads.train import BatchStream, adam_with_cosine, evaluate, fit, generator_for, predict, steps_for


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
