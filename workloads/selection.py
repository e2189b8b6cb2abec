"""Worst-case forget sets (Fan et al., "Challenging Forgets: Unveiling the Worst-Case Forget Sets in Machine
Unlearning", ECCV 2024), as the reference code selects them (OPTML-Group/Unlearn-WorstCase, `data-wise/`:
`main_selmu.py` in its default mode `optm`, `unlearn/impl.py` `optimize_select`, `unlearn/FT.py` `w_FT`, `utils.py`
`bisection` and `SignSGD`).

A weight w_i in [0, 1] per candidate training example, summing to the budget N (the forget set's size). Each
selection epoch:

1. lower level: a fresh copy of the original is unlearned for `lower_epochs` passes over the full training set by a
   weighted unlearning method; the reference's main one (`w_FT`) fine-tunes on every training batch with the summed
   cross-entropy weighted by (1 - w_i), each parameter stepped by sign-SGD (p <- p - lower_lr * sign(grad); the
   reference's SignSGD ignores its momentum and weight decay);
2. upper level: the per-example cross-entropy l_i of that unlearned model on the (augmented) training set, and
   w <- w - w_lr * (l + 2 gamma w), projected back onto {0 <= w <= 1, sum w = N} by the reference's bisection on the
   shift mu of clamp(w - mu, 0, 1). Examples the unlearned model still fits (low loss: unlearning fails on them) gain
   weight; the ones it has forgotten lose it. The upper level is projected gradient descent with the loss as the
   gradient of sum_i w_i l_i (no implicit gradient through the lower level); sign-SGD is the lower level's optimiser;
3. the top-N weights are the epoch's binary selection; every `binarize_every` epochs (capped at `select_epochs`, as
   the reference caps `feq_to_bi`) w is replaced by it.

It starts from a random binary selection of N candidates (here the `random` criterion's forget set of the same
`forget` section), and the forget set is the top N of the last epoch's weights (`main_evalmu.py` takes
`topk(w[-1])`). Where this departs from the reference: candidates are the forget section's (`target_class: null`,
every class, is the reference's `class_to_replace = -1`; with a target class only its examples carry weight, where
the reference would start in the class and then select from the whole training set); the random draws come from the
node's seeded generator (batch order, augmentation, the starting selection), not the reference's global RNG.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch import nn

from workloads.config import ConfigError
from workloads.registry import Registry
from workloads.train import BatchStream, steps_for

UPPER_MODES = ("train", "eval")

Augment = Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]]
# A lower-level unlearning method: (model, x, y, w of the batch's rows) -> the loss whose sign-SGD step it takes.
LowerLevel = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
LOWER_LEVELS: Registry[LowerLevel] = Registry("lower-level unlearning method")


@dataclass
class WorstCaseConfig:
    """The selection's settings; defaults in configs/selection/worst_case.yaml (the reference's README example)."""

    lower: str = MISSING  # the lower-level method (LOWER_LEVELS): finetune is the reference's w_FT
    lower_epochs: float = MISSING  # its passes over the full training set per selection epoch (`unlearn_steps`)
    lower_lr: float = MISSING  # its sign-SGD step (`theta_lr`)
    batch_size: int = MISSING  # of the lower level and of the upper level's loss pass (`batch_size`)
    select_epochs: int = MISSING  # upper-level epochs (`select_epochs`)
    w_lr: float = MISSING  # the upper level's step (`w_lr`)
    gamma: float = MISSING  # weight of the penalty gamma * ||w||^2 (`gamma`)
    binarize_every: int = MISSING  # w replaced by its top-N selection every this many epochs (`feq_to_bi`)
    augment: bool = MISSING  # both levels draw the training set through its augmentation (the reference's loader)
    upper_mode: str = MISSING  # train | eval: the mode the upper level's losses are computed in (reference: train)

    def __post_init__(self):
        if self.upper_mode not in UPPER_MODES:
            raise ConfigError(f"upper_mode: must be one of {', '.join(UPPER_MODES)}, got {self.upper_mode!r}")
        if self.lower not in LOWER_LEVELS:
            raise ConfigError(f"lower: unknown lower-level method {self.lower!r}; known: {', '.join(LOWER_LEVELS)}")
        for name in ("lower_epochs", "lower_lr", "batch_size", "select_epochs", "binarize_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive, got {getattr(self, name)}")


@LOWER_LEVELS.register("finetune")
def weighted_finetune(model: nn.Module, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The reference's `w_FT`: fine-tuning on the training batch, each row's cross-entropy weighted by 1 - w (a
    selected example is left out of the retain data in proportion to its weight), summed over the batch."""
    return ((1 - w) * F.cross_entropy(model(x), y, reduction="none")).sum()


def project_to_budget(a: torch.Tensor, budget: float, xi: float = 1e-5, max_iter: int = 100) -> torch.Tensor:
    """clamp(a - mu, 0, 1) with mu found by the reference's bisection (`utils.bisection`) so that the sum is the
    budget: mu between min(a) - 1 and max(a), halved until the bracket is narrower than xi (or 100 halvings, or an
    exact hit), keeping the half where the sum crosses the budget."""
    low, high = (a - 1).min(), a.max()
    mid = (low + high) / 2
    for _ in range(max_iter + 1):
        if (high - low).abs() <= xi:
            break
        mid = (low + high) / 2
        gap = (a - mid).clamp(0, 1).sum() - budget
        gap_low = (a - low).clamp(0, 1).sum() - budget
        if gap == 0:
            break
        if torch.sign(gap) == torch.sign(gap_low):
            low = mid
        else:
            high = mid
    return (a - mid).clamp(0, 1)


def upper_step(w: torch.Tensor, losses: torch.Tensor, budget: int, w_lr: float, gamma: float) -> torch.Tensor:
    """One upper-level step (`optimize_select`): w - w_lr * (l + 2 gamma w), projected onto the budget (in float64,
    as the reference's w becomes)."""
    w = w.double()
    return project_to_budget(w - w_lr * (losses.double() + 2 * gamma * w), float(budget))


def top_selection(w: torch.Tensor, budget: int) -> torch.Tensor:
    """The binary selection: 1 on the `budget` largest weights."""
    binary = torch.zeros_like(w)
    binary[torch.topk(w, budget).indices] = 1
    return binary


def lower_level(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    cfg: WorstCaseConfig,
    generator: torch.Generator,
    augment: Augment,
) -> float:
    """Unlearns `model` in place by the lower-level method for `lower_epochs` passes over (x, y), each row weighted
    by its w, with sign-SGD steps; returns the mean loss."""
    loss_of = LOWER_LEVELS.get(cfg.lower)
    stream = BatchStream(x, y, cfg.batch_size, generator, augment)
    steps = steps_for(cfg.lower_epochs, len(y), cfg.batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    total = torch.zeros((), device=y.device)
    for _ in range(steps):
        xb, yb = next(stream)
        loss = loss_of(model, xb, yb, w[stream.last_index].to(xb.dtype))
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p.add_(g.sign(), alpha=-cfg.lower_lr)
        total += loss.detach()
    return (total / steps).item()


@torch.no_grad()
def example_losses(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: WorstCaseConfig, generator: torch.Generator, augment
) -> torch.Tensor:
    """The per-example cross-entropy of every training row, in `upper_mode` (the reference scores its shuffled,
    augmented training loader with the model left in train mode), batches in a seeded order."""
    model.train(cfg.upper_mode == "train")
    losses = torch.empty(len(y), device=y.device)
    order = torch.randperm(len(y), generator=generator, device=generator.device).to(y.device)
    for i in range(0, len(y), cfg.batch_size):
        index = order[i : i + cfg.batch_size]
        xb = x[index]
        xb = augment(xb, generator) if augment is not None else xb
        losses[index] = F.cross_entropy(model(xb), y[index], reduction="none")
    return losses


@dataclass
class Selection:
    scores: torch.Tensor  # the last epoch's weights over the whole training set (0 outside the candidates), float64
    start: torch.Tensor  # the random binary selection the search started from
    epochs: list[dict]  # per selection epoch: the upper objective, how many of the top-N changed, the lower loss


def select_worst_case(
    unlearnable: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    candidates: torch.Tensor,
    start: torch.Tensor,
    cfg: WorstCaseConfig,
    generator: torch.Generator,
    augment: Augment = None,
) -> Selection:
    """The bi-level search. `unlearnable()` gives a fresh copy of the original each epoch (the reference reloads its
    checkpoint); `candidates` index the training rows that may be selected, `start` the first selection (a subset of
    them, of the budget's size)."""
    budget, device = len(start), y.device
    w = torch.zeros(len(y), dtype=torch.float64, device=device)
    w[start.to(device)] = 1
    first, epochs = w.clone(), []
    every = min(cfg.binarize_every, cfg.select_epochs)
    candidates = candidates.to(device)
    for epoch in range(cfg.select_epochs):
        model = unlearnable()
        lower_loss = lower_level(model, x, y, w, cfg, generator, augment)
        losses = example_losses(model, x, y, cfg, generator, augment)
        before = top_selection(w[candidates], budget)
        stepped = upper_step(w[candidates], losses[candidates], budget, cfg.w_lr, cfg.gamma)
        binary = top_selection(stepped, budget)
        epochs.append(
            {
                "epoch": epoch + 1,
                "lower_loss": lower_loss,
                "upper_objective": float((stepped * losses[candidates].double()).sum()),
                "changed": int((binary != before).sum()) // 2,
                "selected_loss": float(losses[candidates][binary.bool()].mean()),
                "unselected_loss": float(losses[candidates][~binary.bool()].mean()) if budget < len(candidates) else 0,
            }
        )
        w = torch.zeros_like(w)
        w[candidates] = binary.double() if (epoch + 1) % every == 0 else stepped
        scores = torch.zeros_like(w)
        scores[candidates] = stepped
    return Selection(scores.cpu(), first.cpu(), epochs)
