"""`rem` (Redirection for Erasing Memory, Schoepf et al. 2025) and its ablations `rem_npo_only` and `rem_no_redirect`.

REM runs on a model with spare channels: example-tied dropout's memorisation channels, or the dormant half of a
half-capacity base model (workloads/models/tied_dropout.py); they are the capacity it adds, and since inference
drops them, the capacity is discarded afterwards. Within the budget of `epochs` (steps of the full training set):

1. flush: NPO (npo.py) on the discovered set D_f in drop mode (no masks: the model inference uses), a pass over
   D_f at a time, until its accuracy (eval mode, on the labels it was trained with) is at most `threshold`, or
   after `max_flush_epochs` passes;
2. repair and redirect: one pass over the full training set in mask mode, every retain example through its own
   mask and every discovered example through one shared mask (`SHARED_EXAMPLE`), `mask_share` of the spare
   channels each: cross-entropy on the training labels of every example (the redirect term: what the discovered
   examples were made to learn goes to the shared, discarded channels) plus `removal_weight` times NPO on the
   discovered examples of the batch in drop mode (the removal term);
3. score the round, acc(retain) * (1 - max(acc(D_f), threshold)) in eval mode, and keep the best round's weights.

Rounds repeat until the budget is spent (a round cut short is scored too). `rem_npo_only` is the flush alone, once;
`rem_no_redirect` leaves the discovered examples out of the repair's cross-entropy (no shared mask). Where the
paper's text leaves the form of a term open, docs/rem.md says what was chosen.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import OptimizerConfig, UnlearningMethod, register_method
from workloads.methods.npo import npo_loss
from workloads.models.tied_dropout import SHARED_EXAMPLE, spare_channels, tied_to
from workloads.train import BatchStream, predict


@dataclass
class REMConfig(OptimizerConfig):
    beta: float = MISSING  # NPO's
    threshold: float = MISSING  # the flush stops at this accuracy on D_f; the selection floors acc(D_f) at it
    max_flush_epochs: int = MISSING  # passes over D_f per flush
    mask_share: float = MISSING  # share of the spare channels in each mask while repairing
    removal_weight: float = MISSING


def round_score(retain_acc: float, forget_acc: float, threshold: float) -> float:
    """The selection rule: acc(retain) * (1 - max(acc(D_f), threshold))."""
    return retain_acc * (1.0 - max(forget_acc, threshold))


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (predict(model, x).argmax(1) == y).float().mean().item()


@register_method("rem_no_redirect", redirect=False)
@register_method("rem_npo_only", repair=False)
@register_method("rem")
class REM(UnlearningMethod):
    Config = REMConfig
    repair, redirect = True, True

    @classmethod
    def needs_spare_channels(cls) -> bool:
        return cls.repair

    def run(self, model, ctx, optimizer, total):
        if self.needs_spare_channels() and spare_channels(model) == 0:
            raise ValueError(
                f"{self.name} repairs through masks over spare channels, and this model has none: give it "
                "example-tied dropout (model.args.generalisation < 1)"
            )
        self.model, self.ctx, self.optimizer, self.left = model, ctx, optimizer, total
        self.used, self.losses, rounds = 0, [], []
        best_score, best = -1.0, None
        while self.left > 0:
            flushed = self.flush()
            if self.repair:
                self.repair_and_redirect()
            rounds.append(self.score(len(rounds) + 1, flushed))
            if rounds[-1]["score"] > best_score:
                best_score, best = rounds[-1]["score"], copy.deepcopy(model.state_dict())
            if not self.repair:
                break
        model.load_state_dict(best)
        ctx.report["rem"] = {"rounds": rounds, "chosen": max(rounds, key=lambda r: r["score"])["round"]}
        return self.losses

    # -- the phases -------------------------------------------------------------------------------------------------
    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.left, self.used = self.left - 1, self.used + 1
        self.losses.append((self.used, loss.item()))

    def removal(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """NPO against the original, in drop mode (outside tied_to every memorisation channel is off)."""
        with torch.no_grad():
            reference = self.ctx.original(x)
        return npo_loss(self.model(x), y, reference, self.cfg.beta)

    def flush(self) -> int:
        """NPO passes over D_f while its accuracy is above the threshold; returns the steps taken."""
        ctx, forget, taken = self.ctx, self.ctx.forget_batches, 0
        for _ in range(self.cfg.max_flush_epochs):
            if self.left == 0 or accuracy(self.model, ctx.forget_x, ctx.forget_y) <= self.cfg.threshold:
                break
            for _ in range(min(forget.batches_per_pass, self.left)):
                self.step(self.removal(*next(forget)))
                taken += 1
        return taken

    def repair_and_redirect(self) -> None:
        """One pass over the full training set: retain rows through their own masks, discovered rows through the
        shared one (or, without redirection, kept out of the cross-entropy), plus the removal term on them."""
        ctx, cfg = self.ctx, self.cfg
        retain_ids = (
            ctx.retain_ids
            if ctx.retain_ids is not None
            else torch.arange(len(ctx.retain_y), device=ctx.retain_y.device)
        )
        x, y = torch.cat([ctx.retain_x, ctx.forget_x]), torch.cat([ctx.retain_y, ctx.forget_y])
        ids = torch.cat([retain_ids.to(y.device), torch.full_like(ctx.forget_y, SHARED_EXAMPLE)])
        stream = BatchStream(x, y, cfg.batch_size, ctx.generator, ctx.augment)
        for _ in range(min(stream.batches_per_pass, self.left)):
            xb, yb = next(stream)
            batch_ids = ids[stream.last_index]
            discovered = batch_ids == SHARED_EXAMPLE
            learn = torch.ones_like(discovered) if self.redirect else ~discovered
            with tied_to(self.model, batch_ids, share=cfg.mask_share):
                logits = self.model(xb)
            loss = F.cross_entropy(logits[learn], yb[learn]) if learn.any() else logits.sum() * 0.0
            if discovered.any():
                loss = loss + cfg.removal_weight * self.removal(xb[discovered], yb[discovered])
            self.step(loss)

    def score(self, number: int, flushed: int) -> dict:
        ctx = self.ctx
        retain_acc, forget_acc = (
            accuracy(self.model, ctx.retain_x, ctx.retain_y),
            accuracy(self.model, ctx.forget_x, ctx.forget_y),
        )
        return {
            "round": number,
            "steps": self.used,
            "flush_steps": flushed,
            "retain_acc": retain_acc,
            "forget_acc": forget_acc,
            "score": round_score(retain_acc, forget_acc, self.cfg.threshold),
        }
