"""`potion_reconstructed`: the project's earlier Potion, rebuilt from the paper (Schoepf, Foster & Brintrup 2024,
"Potion: towards poison unlearning") before the reference code was read; `potion` (potion.py) now follows the code.
Kept so that its results stay comparable. Choices made then (docs/rem.md):

- importances are SSD's diagonal Fisher, as means over batches, of the discovered set (F_f) and of all the data at
  hand, retain and discovered together (F_D);
- parameters are *ranked* by F_f / F_D and the top `share` of them selected;
- each selected parameter is dampened as in SSD, theta *= min(dampening * F_D / F_f, 1);
- the search starts at `share_start` and multiplies the share by `share_growth`, each trial from the unedited model,
  until the accuracy on the discovered set (with the labels it was trained on) is at most `threshold` or the share
  reaches `share_max`; the last trial is kept. No gradient step follows: the budget of steps goes unused.
"""

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method
from workloads.methods.proxy import accuracy
from workloads.methods.ssd import fisher_diagonal


def mean_fisher(model, x, y, batch_size, augment=None, generator=None) -> list[torch.Tensor]:
    batches = max(1, -(-len(y) // batch_size))
    return [f / batches for f in fisher_diagonal(model, x, y, batch_size, augment, generator)]


@torch.no_grad()
def dampen_top_share(
    model: torch.nn.Module,
    forget: list[torch.Tensor],
    full: list[torch.Tensor],
    share: float,
    dampening: float,
    eps: float,
) -> int:
    """Dampens the `share` of parameters with the highest F_f / F_D; returns how many were selected."""
    ratios = [f / (d + eps) for f, d in zip(forget, full)]
    flat = torch.cat([r.flatten() for r in ratios])
    count = max(1, round(share * len(flat)))
    threshold = torch.topk(flat, count).values[-1]
    for p, r, f, d in zip(model.parameters(), ratios, forget, full):
        selected = r >= threshold
        p.mul_(torch.where(selected, (dampening * d / (f + eps)).clamp(max=1.0), torch.ones_like(p)))
    return count


@dataclass
class PotionReconstructedConfig(MethodConfig):
    threshold: float = MISSING  # the search stops once accuracy on the discovered set is at most this
    share_start: float = MISSING
    share_growth: float = MISSING
    share_max: float = MISSING
    dampening: float = MISSING  # SSD's lambda
    eps: float = MISSING


@register_method("potion_reconstructed")
class PotionReconstructed(UnlearningMethod):
    Config = PotionReconstructedConfig

    def run(self, model, ctx, optimizer, total):
        cfg = self.cfg
        x_all, y_all = torch.cat([ctx.retain_x, ctx.forget_x]), torch.cat([ctx.retain_y, ctx.forget_y])
        forget = mean_fisher(model, ctx.forget_x, ctx.forget_y, cfg.batch_size, ctx.augment, ctx.generator)
        full = mean_fisher(model, x_all, y_all, cfg.batch_size, ctx.augment, ctx.generator)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        share, trials = cfg.share_start, []
        while True:
            model.load_state_dict(start)
            selected = dampen_top_share(model, forget, full, share, cfg.dampening, cfg.eps)
            acc = accuracy(model, ctx.forget_x, ctx.forget_y)
            trials.append({"share": share, "selected": selected, "forget_acc": acc})
            if acc <= cfg.threshold or share >= cfg.share_max:
                break
            share = min(share * cfg.share_growth, cfg.share_max)
        ctx.report["potion"] = {"trials": trials, "share": share}
        return [(i + 1, t["forget_acc"]) for i, t in enumerate(trials)]
