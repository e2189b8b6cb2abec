"""What the REM study's methods (REM, NPO, Potion) read to stop and to choose: accuracy on a set in eval mode, and the
proxy score acc(retain) * (1 - max(acc(D_f), threshold)) that ranks their candidates. The reference code scores its
retain and forget loaders, which augment; `score_on: augmented` does the same (a fresh draw at every call, from the
run's generator), `clean` scores the tensors as they are. Without augmentation in the run both are the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch

SCORE_ON = ("augmented", "clean")


@torch.no_grad()
def accuracy(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None,
    generator: Optional[torch.Generator] = None,
    batch_size: int = 2048,
) -> float:
    """Share of rows predicted right in eval mode (one host sync), each chunk augmented first if `augment` is given.
    A float32 quotient, as the reference's torchmetrics accuracy: 1/5 is then just above a threshold of 0.2."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=y.device)
    for i in range(0, len(y), batch_size):
        xb = x[i : i + batch_size]
        correct += (model(augment(xb, generator) if augment else xb).argmax(1) == y[i : i + batch_size]).sum()
    model.train(was_training)
    return (correct.float() / max(len(y), 1)).item()


def proxy_score(retain_acc: float, forget_acc: float, threshold: float) -> float:
    """acc(retain) * (1 - max(acc(D_f), threshold)): forgetting below the threshold earns nothing more."""
    return retain_acc * (1.0 - max(forget_acc, threshold))


def scorer(ctx, score_on: str) -> Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], float]:
    """accuracy(model, x, y) as a method configured with `score_on` reads it."""
    augment = ctx.augment if score_on == "augmented" else None
    return lambda model, x, y: accuracy(model, x, y, augment, ctx.generator)
