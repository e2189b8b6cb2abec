"""`npo` (negative preference optimisation, Zhang et al. 2024) as the REM study's reference code runs it as a baseline
(`NPO` in if-loops/rem `src/methods.py`), and `npo_retain`, the project's earlier NPO with a retain term.

The loss on a forget batch is -(2 / beta) * log sigmoid(beta * (CE_theta - CE_ref)), the reference being the frozen
original (drop mode, batch-norm in train mode, as the reference's copy runs); it falls as the model's cross-entropy
rises above the original's, and flattens out (unlike gradient ascent, whose loss has no floor). REM reuses its per-row
form (rem.py).

`npo` is the forget term alone, a pass over the forget set at a time: before every pass but the first, it stops once
accuracy on the forget set is at most `threshold`; each pass is charged one epoch of the full training set (the
reference adds 98 steps, CIFAR-10's at batch 512), so the budget of `epochs` allows that many passes. After each pass
it scores acc(retain) * (1 - max(acc(D_f), threshold)) and keeps the best pass (proxy.py).

`npo_retain` adds alpha * CE on a retain batch every step, for the whole budget: a different, stronger method.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import OptimizerConfig, UnlearningMethod, check_choice, register_method
from workloads.methods.proxy import SCORE_ON, proxy_score, scorer
from workloads.train import steps_for


def npo_rows(logits: torch.Tensor, y: torch.Tensor, reference_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """Per row: -(2 / beta) * log sigmoid(beta * (CE(logits, y) - CE(reference_logits, y)))."""
    gap = F.cross_entropy(logits, y, reduction="none") - F.cross_entropy(reference_logits, y, reduction="none")
    return -(2.0 / beta) * F.logsigmoid(beta * gap)


def npo_loss(logits: torch.Tensor, y: torch.Tensor, reference_logits: torch.Tensor, beta: float) -> torch.Tensor:
    """npo_rows averaged over the batch."""
    return npo_rows(logits, y, reference_logits, beta).mean()


def reference_npo(model, ctx, x, y, beta: float) -> torch.Tensor:
    with torch.no_grad():
        reference = ctx.original(x)
    return npo_loss(model(x), y, reference, beta)


@dataclass
class NPOConfig(OptimizerConfig):
    beta: float = MISSING
    threshold: float = MISSING  # stop once acc(D_f) is at most this; the score floors acc(D_f) at it
    score_on: str = MISSING  # augmented | clean: the images the stopping check and the score see (proxy.py)

    def __post_init__(self):
        check_choice(self, "score_on", SCORE_ON)


@register_method("npo")
class NPO(UnlearningMethod):
    Config = NPOConfig
    version = 2  # 1: NPO plus a retain term for the whole budget (now `npo_retain`)

    @classmethod
    def batches_per_step(cls, cfg: NPOConfig) -> int:
        return 1

    def run(self, model, ctx, optimizer, total):
        cfg, accuracy = self.cfg, scorer(ctx, self.cfg.score_on)
        passes = math.ceil(total / steps_for(1, ctx.train_size, cfg.batch_size))
        best, best_score, curve, scores = None, 0.0, [], []
        for number in range(passes):
            # The first pass runs whatever the accuracy (the reference forces it; its selection guards the result).
            if number and accuracy(model, ctx.forget_x, ctx.forget_y) <= cfg.threshold:
                break
            curve.append(self.one_pass(model, ctx, optimizer, curve[-1][0] if curve else 0))
            retain_acc = accuracy(model, ctx.retain_x, ctx.retain_y)
            forget_acc = accuracy(model, ctx.forget_x, ctx.forget_y)
            score = proxy_score(retain_acc, forget_acc, cfg.threshold)
            scores.append({"pass": number + 1, "retain_acc": retain_acc, "forget_acc": forget_acc, "score": score})
            if score > best_score:  # strictly above every pass before it, and above 0
                best, best_score = (number + 1, copy.deepcopy(model.state_dict())), score
        # No pass above 0: the reference returns the start (its best model starts as a copy of it).
        model.load_state_dict(best[1] if best else ctx.start.state_dict())
        ctx.report["npo"] = {"passes": scores, "steps": curve[-1][0], "chosen": best[0] if best else 0}
        return curve

    def one_pass(self, model, ctx, optimizer, taken: int) -> tuple[int, float]:
        """NPO steps over every forget batch once; returns (steps taken so far, the pass's mean loss)."""
        forget, running = ctx.forget_batches, torch.zeros((), device=ctx.forget_y.device)
        for _ in range(forget.batches_per_pass):
            loss = reference_npo(model, ctx, *next(forget), self.cfg.beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += loss.detach()
        return taken + forget.batches_per_pass, running.item() / forget.batches_per_pass  # one host sync per pass


@dataclass
class NPORetainConfig(OptimizerConfig):
    beta: float = MISSING
    alpha: float = MISSING  # weight of the retain term


@register_method("npo_retain")
class NPORetain(UnlearningMethod):
    Config = NPORetainConfig

    def retain_loss(self, model, x, y, ctx):
        return self.cfg.alpha * F.cross_entropy(model(x), y) if self.cfg.alpha else None

    def forget_loss(self, model, x, y, ctx):
        return reference_npo(model, ctx, x, y, self.cfg.beta)
