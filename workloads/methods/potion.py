"""`potion` (Schoepf, Foster & Brintrup 2024) as the REM study's reference code runs it: `XALFSSD` in if-loops/rem
`src/methods.py` with `alfssd_tuning` and `ParameterPerturber` in `src/utils.py` (label-free, `x_d=True`, adaptive).

1. Importances, once, on the start model in eval mode: for each set, the mean over its batches of |d L / d theta| with
   L = mean over the batch of ||logits||_2 (no labels): F_r over the retain set, F_f over the discovered set.
2. Trials k = 0, 1, ... (at most `max_tries`), each from the start model: the share s_k = |D_f| / |D| * growth^k, the
   percentile q = 100 - ln(1 + 100 s_k) (s_0 = 2% gives about 98.9), and t the q-th percentile (numpy's linear one) of
   F_f / F_r over every parameter entry where that ratio is finite. Every entry with F_f > t * F_r is multiplied by
   min(dampening * F_r / F_f, 1).
3. A trial ends the search once accuracy on the discovered set is at most `threshold` times the start's, or at most
   `threshold`; otherwise the next one starts. The last trial is kept. No gradient step follows.

`potion_reconstructed` (potion_reconstructed.py) is the project's earlier version, rebuilt from the paper.
"""

import math
from dataclasses import dataclass

import torch
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, check_choice, register_method
from workloads.methods.proxy import SCORE_ON, scorer


def label_free_importance(model, x, batch_size, augment=None, generator=None) -> list[torch.Tensor]:
    """Mean over batches (in a random order) of |grad of the batch mean of ||logits||_2|, in eval mode."""
    params = list(model.parameters())
    importance = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    order = torch.randperm(len(x), generator=generator, device=generator.device).to(x.device) if generator else None
    batches = math.ceil(len(x) / batch_size)
    for i in range(0, len(x), batch_size):
        xb = x[order[i : i + batch_size]] if order is not None else x[i : i + batch_size]
        loss = model(augment(xb, generator) if augment else xb).norm(dim=1).mean()
        for total, grad in zip(importance, torch.autograd.grad(loss, params, allow_unused=True)):
            if grad is not None:
                total.add_(grad.abs())
    model.train(was_training)
    return [total / batches for total in importance]


def percentile(values: torch.Tensor, q: float) -> float:
    """numpy's default (linear) percentile of a 1-D tensor, in float64."""
    ordered = values.double().sort().values
    position = q / 100 * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return (ordered[low] + (ordered[high] - ordered[low]) * (position - low)).item()


def selection_threshold(forget: list[torch.Tensor], retain: list[torch.Tensor], share: float) -> float:
    """t: the percentile 100 - ln(1 + 100 * share) of the finite ratios F_f / F_r."""
    ratios = torch.cat([(f / r).flatten() for f, r in zip(forget, retain)])
    return percentile(ratios[torch.isfinite(ratios)], 100 - math.log(1 + share * 100))


@torch.no_grad()
def dampen(model, forget: list[torch.Tensor], retain: list[torch.Tensor], threshold: float, dampening: float) -> int:
    """theta *= min(dampening * F_r / F_f, 1) where F_f > threshold * F_r; returns how many entries were selected."""
    count = torch.zeros((), dtype=torch.long, device=forget[0].device)
    for p, f, r in zip(model.parameters(), forget, retain):
        selected = f > r * threshold
        p.mul_(torch.where(selected, (dampening * r / f).clamp(max=1.0), torch.ones_like(p)))
        count += selected.sum()
    return int(count)


@dataclass
class PotionConfig(MethodConfig):
    threshold: float = MISSING  # stop at acc(D_f) <= threshold * the start's, or <= threshold (the reference's p_cut)
    growth: float = MISSING  # the share's factor from one trial to the next
    max_tries: int = MISSING
    dampening: float = MISSING  # lambda
    score_on: str = MISSING  # augmented | clean: the images the accuracies see (proxy.py)

    def __post_init__(self):
        check_choice(self, "score_on", SCORE_ON)


@register_method("potion")
class Potion(UnlearningMethod):
    Config = PotionConfig
    version = 2  # 1: the reconstruction from the paper (now `potion_reconstructed`)

    def run(self, model, ctx, optimizer, total):
        cfg, accuracy = self.cfg, scorer(ctx, self.cfg.score_on)
        start_acc = accuracy(model, ctx.forget_x, ctx.forget_y)
        retain = label_free_importance(model, ctx.retain_x, cfg.batch_size, ctx.augment, ctx.generator)
        forget = label_free_importance(model, ctx.forget_x, cfg.batch_size, ctx.augment, ctx.generator)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        first_share = len(ctx.forget_y) / (len(ctx.forget_y) + len(ctx.retain_y))
        trials = []
        for k in range(cfg.max_tries):
            model.load_state_dict(start)
            share = first_share * cfg.growth**k
            t = selection_threshold(forget, retain, share)
            selected = dampen(model, forget, retain, t, cfg.dampening)
            acc = accuracy(model, ctx.forget_x, ctx.forget_y)
            trials.append({"share": share, "threshold": t, "selected": selected, "forget_acc": acc})
            if acc <= cfg.threshold * start_acc or acc <= cfg.threshold:
                break
        ctx.report["potion"] = {"start_forget_acc": start_acc, "trials": trials}
        return [(i + 1, trial["forget_acc"]) for i, trial in enumerate(trials)]
