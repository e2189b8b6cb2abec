"""`salun` (saliency unlearning, Fan et al. 2024): a mask of the weights whose forget-loss gradient is largest in
magnitude (the top `saliency` share of all weights, 0.5: above the median), then random-label fine-tuning like
`random_relabel` (alpha * CE(r) + CE(f, y~)) that changes those weights only. The forget loss of the mask is the
cross-entropy on the whole forget set (its gradient summed over batches, in train mode like the steps after it);
after every optimiser step the weights outside the mask are put back, so neither momentum nor weight decay moves
them.

`salun_reference` is what the REM study's reference code runs under that name (`SalUn` in if-loops/rem
`src/methods.py`), so that the paper's row can be reproduced: batches of the full training set, cross-entropy on the
rows that are not discovered, plus a "saliency" term that multiplies the discovered images by a detached gradient
with respect to those images. That term has no path to the weights (their gradient from it is None), so the update
is fine-tuning on the non-discovered rows of each batch, which is what this variant computes (batch-norm sees the
whole batch in one forward, as there), with the reference loop's learning-rate schedule and returned checkpoint
(reference_loop.py)."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import OptimizerConfig, UnlearningMethod, register_method
from workloads.methods.random_relabel import RandomRelabel
from workloads.methods.reference_loop import ReferenceLoop, ReferenceLoopConfig


def saliency_mask(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, share: float, batch_size: int
) -> list[torch.Tensor]:
    """Per parameter, True where |d CE(x, y) / d theta| is among the largest `share` of all the model's entries."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p) for p in params]
    for i in range(0, len(y), batch_size):
        for g, d in zip(
            grads, torch.autograd.grad(F.cross_entropy(model(x[i : i + batch_size]), y[i : i + batch_size]), params)
        ):
            g.add_(d)
    magnitudes = torch.cat([g.abs().flatten() for g in grads])
    keep = max(1, round(share * len(magnitudes)))
    threshold = torch.topk(magnitudes, keep).values[-1]
    return [g.abs() >= threshold for g in grads]


@dataclass
class SalUnConfig(OptimizerConfig):
    alpha: float = MISSING  # weight of the retain term
    saliency: float = MISSING  # share of the weights that may change


@register_method("salun")
class SalUn(RandomRelabel):
    Config = SalUnConfig

    def edit_weights(self, model, ctx):
        """No edit: computes the mask, and keeps the weights outside it."""
        self.mask = saliency_mask(model, ctx.forget_x, ctx.forget_y, self.cfg.saliency, self.cfg.batch_size)
        self.kept = [p.detach().clone() for p in model.parameters() if p.requires_grad]

    @torch.no_grad()
    def after_step(self, model, ctx):
        for p, mask, kept in zip((p for p in model.parameters() if p.requires_grad), self.mask, self.kept):
            p.copy_(torch.where(mask, p, kept))


@register_method("salun_reference")
class SalUnReference(ReferenceLoop, UnlearningMethod):
    Config = ReferenceLoopConfig
    schedule = "full"

    def full_loss(self, model, x, y, discovered, ctx):
        """Mean CE over the batch's non-discovered rows (zero, with a graph, when every row is discovered)."""
        kept = (~discovered).float()
        return (F.cross_entropy(model(x), y, reduction="none") * kept).sum() / kept.sum().clamp(min=1)
