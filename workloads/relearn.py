"""The relearning attack: fine-tune on the retain set plus the first k forget examples of the attack pool, and
watch accuracy on the held-out forget examples (never trained on, whatever k is) come back."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from workloads.forget import ForgetSet
from workloads.train import BatchStream, adam_with_cosine, evaluate, fit, generator_for, predict, steps_for

RELEARN_SETS = ("retain",)


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


def attack_indices(forget_set: ForgetSet, k: int, relearn_set: str) -> torch.Tensor:
    """Training-set indices the attacker fine-tunes on."""
    if relearn_set not in RELEARN_SETS:
        raise ValueError(f"relearn_set must be one of {RELEARN_SETS}, got {relearn_set!r}")
    if k > len(forget_set.pool):
        raise ValueError(f"k={k} exceeds the attack pool of {len(forget_set.pool)} forget examples")
    return torch.cat([forget_set.retain, forget_set.pool[:k]])


def relearn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, forget_set: ForgetSet, k: int, cfg: RelearnConfig,
            seed: int, test: tuple[torch.Tensor, torch.Tensor], num_classes: int) -> dict:
    index = attack_indices(forget_set, k, cfg.relearn_set).to(x.device)
    heldout = forget_set.heldout.to(x.device)
    heldout_x, heldout_y = x[heldout], y[heldout]
    total = steps_for(cfg.epochs, len(y), cfg.batch_size)
    stream = BatchStream(x[index], y[index], cfg.batch_size, generator_for(seed, x.device))
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
        "test_acc": evaluate(model, *test, num_classes)["acc"],
        "steps": total,
        "train_examples": len(index),
    }
