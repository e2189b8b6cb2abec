"""`rem` (Redirection for Erasing Memory, Schoepf et al. 2025) as its reference code runs it (`REM` in if-loops/rem
`src/methods.py`), and its ablations `rem_npo_only` and `rem_no_redirect`.

REM runs on a model with spare channels: example-tied dropout's memorisation channels, or the dormant half of a
half-capacity base model (workloads/models/tied_dropout.py). They are the capacity it adds, and since inference drops
them, the capacity is discarded afterwards. (0) A model trained without memorisation masks gets masks of `mask_share`
of its spare channels (the reference's p_mem = 0.2); the NPO reference model is a frozen copy of the start model, run
in mask mode with batch-norm in eval mode. Then, while repair steps are left in the budget of `epochs` (steps of the
full training set):

1. flush: NPO (npo.py) on the discovered set D_f in drop mode, a pass at a time, until its accuracy on the labels it
   was trained with is at most `threshold`, or after `max_flush_epochs` passes. Its steps are free: the reference's
   epoch helper gives back the step it counts;
2. repair and redirect: one pass over the full training set (undiscovered corruptions included), one drop-mode and one
   mask-mode forward of each whole batch, every retain example through its own mask and every discovered example
   through one shared mask (`SHARED_EXAMPLE`). Every row gets the redirect term 2/b log s(b (CE_mask - CE_ref)), the
   discovered rows also the removal term -2/b log s(b (CE_drop - CE_ref)), and the sum is averaged over the batch;
3. score the round, acc(retain) * (1 - max(acc(D_f), threshold)), and keep the best round that beats the start's
   score; if none does, the last round stays (the reference's best model is the trained model itself until a round
   beats the start).

Every place where the project once chose otherwise is a config value (docs/rem.md lists them); the defaults file
holds the reference's. `rem_npo_only` is the flush alone, once; `rem_no_redirect` gives the discovered rows no
redirect term. The loss of a repair step is a pure function of per-row terms (`repair_loss`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import OptimizerConfig, UnlearningMethod, check_choice, register_method
from workloads.methods.npo import npo_loss, npo_rows
from workloads.methods.proxy import SCORE_ON, accuracy, proxy_score, scorer
from workloads.models.tied_dropout import SHARED_EXAMPLE, spare_channels, tied_layers, tied_to
from workloads.train import BatchStream

# The discovered rows' mask in the reference copy when it is not the model's: the reference's copy is taken before the
# model's shared mask id is set (0), so its discovered rows keep the default id (42), another mask.
REFERENCE_SHARED = SHARED_EXAMPLE - 1

round_score = proxy_score  # the selection rule, under the name the tests and reports know

__all__ = ["REM", "REMConfig", "accuracy", "repair_loss", "round_score"]


@dataclass
class REMConfig(OptimizerConfig):
    beta: float = MISSING  # NPO's
    threshold: float = MISSING  # the flush stops at this accuracy on D_f; the score floors acc(D_f) at it
    max_flush_epochs: int = MISSING  # passes over D_f per flush
    mask_share: float = MISSING  # share of the spare channels in each mask, for a model trained without masks
    removal_weight: float = MISSING
    # The reference's choice first; the other value is the project's earlier one (docs/rem.md, point by point).
    charge_flush: bool = MISSING  # false: flush steps are free | true: every flush step is charged to the budget
    redirect_loss: str = MISSING  # npo: 2/b log s(b (CE_mask - CE_ref)) per row | ce: cross-entropy
    removal_mean: str = MISSING  # batch: the removal rows summed over the batch size | discovered: their mean
    removal_forward: str = MISSING  # batch: drop-mode forward of the whole batch | discovered: of its discovered rows
    npo_reference: str = MISSING  # masked: the start's copy, mask mode, BN eval | original: drop mode, BN train
    reference_mask: str = MISSING  # other: the copy's discovered rows through another shared mask | same
    # beat_start: the best round above the start's score, else the last round | best_round | best_or_start: as
    # beat_start, but the start when no round beats it (what the reference's "init" comment intends)
    select: str = MISSING
    score_on: str = MISSING  # augmented | clean: what the flush's check and the score see (proxy.py)
    share_override: bool = MISSING  # false: a model trained with masks keeps its share | true: mask_share always

    def __post_init__(self):
        for field, choices in CHOICES.items():
            check_choice(self, field, choices)


CHOICES = {
    "redirect_loss": ("npo", "ce"),
    "removal_mean": ("batch", "discovered"),
    "removal_forward": ("batch", "discovered"),
    "npo_reference": ("masked", "original"),
    "reference_mask": ("other", "same"),
    "select": ("beat_start", "best_round", "best_or_start"),
    "score_on": SCORE_ON,
}


def repair_loss(
    redirect: torch.Tensor,
    learn: torch.Tensor,
    removal: torch.Tensor,
    discovered: torch.Tensor,
    removal_weight: float,
    redirect_mean: str,
    removal_mean: str,
) -> torch.Tensor:
    """(sum of `redirect` over `learn` rows) / n + removal_weight * (sum of `removal` over `discovered` rows) / m, each
    n, m the batch size ("batch") or the count of its rows ("rows", "discovered"). No host sync."""

    def mean(rows: torch.Tensor, chosen: torch.Tensor, how: str) -> torch.Tensor:
        total = torch.where(chosen, rows, torch.zeros_like(rows)).sum()
        return total / (len(rows) if how == "batch" else chosen.sum().clamp(min=1))

    return mean(redirect, learn, redirect_mean) + removal_weight * mean(removal, discovered, removal_mean)


def masked_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy in eval mode whose tied layers still apply masks (the reference's dropout ignores train/eval)."""
    reference = copy.deepcopy(model).requires_grad_(False).eval()
    for layer in tied_layers(reference):
        layer.train()
    return reference


@register_method("rem_no_redirect", redirect=False)
@register_method("rem_npo_only", repair=False)
@register_method("rem")
class REM(UnlearningMethod):
    Config = REMConfig
    version = 2  # 1: flush steps charged, CE redirect, removal on the discovered rows alone, the original as reference
    repair, redirect = True, True

    @classmethod
    def needs_spare_channels(cls) -> bool:
        return cls.repair

    def run(self, model, ctx, optimizer, total):
        cfg = self.cfg
        if self.needs_spare_channels() and spare_channels(model) == 0:
            raise ValueError(
                f"{self.name} repairs through masks over spare channels, and this model has none: give it "
                "example-tied dropout (model.args.generalisation < 1)"
            )
        self.model, self.ctx, self.optimizer, self.total = model, ctx, optimizer, total
        self.accuracy = scorer(ctx, cfg.score_on)
        # (0) A model trained without masks gets `mask_share`; one trained with them keeps its own share.
        untrained = any(layer.share == 0 for layer in tied_layers(model))
        self.share = cfg.mask_share if cfg.share_override or untrained else None
        self.reference = masked_copy(model) if cfg.npo_reference == "masked" else None
        self.full, self.ids = self.full_stream()
        self.charged, self.taken, self.curve = 0, 0, []
        start = self.score(0, 0) if cfg.select != "best_round" else None
        best_score, best, rounds = (start["score"] if start else -1.0), None, []
        while self.charged < total:
            flushed = self.flush()
            if self.repair:
                self.repair_and_redirect()
            rounds.append(self.score(len(rounds) + 1, flushed))
            if rounds[-1]["score"] > best_score:
                best_score, best = rounds[-1]["score"], (rounds[-1]["round"], copy.deepcopy(model.state_dict()))
            if not self.repair:
                break
        chosen = rounds[-1]["round"]  # no round beat the start: the reference keeps the last one
        if best is not None:
            chosen = best[0]
            model.load_state_dict(best[1])
        elif cfg.select == "best_or_start":
            chosen = 0
            model.load_state_dict(ctx.start.state_dict())
        ctx.report["rem"] = {"rounds": rounds, "chosen": chosen, **({"start": start} if start else {})}
        return self.curve

    # -- the phases -------------------------------------------------------------------------------------------------
    def flush(self) -> int:
        """NPO passes over D_f in drop mode while its accuracy is above the threshold; returns the steps taken."""
        ctx, cfg, forget, taken = self.ctx, self.cfg, self.ctx.forget_batches, 0
        for _ in range(cfg.max_flush_epochs):
            left = self.total - self.charged if cfg.charge_flush else forget.batches_per_pass
            if left <= 0 or self.accuracy(self.model, ctx.forget_x, ctx.forget_y) <= cfg.threshold:
                break
            running = torch.zeros((), device=ctx.forget_y.device)
            for _ in range(min(forget.batches_per_pass, left)):
                x, y = next(forget)
                ids = torch.full_like(y, SHARED_EXAMPLE)
                loss = npo_loss(self.model(x), y, self.reference_logits(x, ids), cfg.beta)
                running += self.step(loss, charged=cfg.charge_flush)
                taken += 1
            self.log(running, min(forget.batches_per_pass, left))
        return taken

    def repair_and_redirect(self) -> None:
        """One pass over the full training set (cut where the budget ends), one step per batch."""
        ctx, cfg, stream = self.ctx, self.cfg, self.full
        # The reference counts a step, then stops once the count is above the budget: where a pass crosses the budget it
        # takes one step more. Charging the flush (the earlier choice) stops at the budget.
        limit = self.total if cfg.charge_flush else self.total + 1
        running, steps = torch.zeros((), device=ctx.retain_y.device), 0
        for _ in range(stream.batches_per_pass):
            if self.charged >= limit:
                break
            x, y = next(stream)
            running += self.step(self.repair_step_loss(x, y, self.ids[stream.last_index]), charged=True)
            steps += 1
        self.log(running, steps)

    def repair_step_loss(self, x: torch.Tensor, y: torch.Tensor, batch_ids: torch.Tensor) -> torch.Tensor:
        cfg, model = self.cfg, self.model
        discovered = batch_ids == SHARED_EXAMPLE
        # Drop mode first, then mask mode, each over the whole batch: batch-norm sees full batches, as in the reference.
        drop_logits = model(x) if cfg.removal_forward == "batch" else None
        needs_reference = cfg.redirect_loss == "npo" or drop_logits is not None
        reference = self.reference_logits(x, batch_ids) if needs_reference else None
        with tied_to(model, batch_ids, share=self.share):
            mask_logits = model(x)
        if cfg.redirect_loss == "npo":
            redirect = -npo_rows(mask_logits, y, reference, cfg.beta)  # 2/b log s(b (CE_mask - CE_ref))
        else:
            redirect = F.cross_entropy(mask_logits, y, reduction="none")
        if drop_logits is not None:
            removal = npo_rows(drop_logits, y, reference, cfg.beta)
        else:
            removal = self.removal_of_discovered(x, y, batch_ids, discovered)
        learn = torch.ones_like(discovered) if self.redirect else ~discovered
        redirect_mean = "batch" if cfg.redirect_loss == "npo" else "rows"
        return repair_loss(redirect, learn, removal, discovered, cfg.removal_weight, redirect_mean, cfg.removal_mean)

    def removal_of_discovered(self, x, y, batch_ids, discovered) -> torch.Tensor:
        """The earlier removal term: a second drop-mode forward of the discovered rows alone (batch-norm sees only
        them, and a batch without any needs the host to know it)."""
        removal = torch.zeros(len(y), device=y.device)
        if discovered.any():
            rows, labels = x[discovered], y[discovered]
            reference = self.reference_logits(rows, batch_ids[discovered])
            removal[discovered] = npo_rows(self.model(rows), labels, reference, self.cfg.beta)
        return removal

    def score(self, number: int, flushed: int) -> dict:
        ctx = self.ctx
        retain_acc = self.accuracy(self.model, ctx.retain_x, ctx.retain_y)
        forget_acc = self.accuracy(self.model, ctx.forget_x, ctx.forget_y)
        return {
            "round": number,
            "steps": self.charged,  # charged to the budget so far
            "steps_taken": self.taken,  # the free flush steps too
            "flush_steps": flushed,
            "retain_acc": retain_acc,
            "forget_acc": forget_acc,
            "score": proxy_score(retain_acc, forget_acc, self.cfg.threshold),
        }

    # -- helpers ----------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def reference_logits(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """CE_ref's logits: the masked copy (discovered rows through its shared mask), or the original in drop mode."""
        if self.reference is None:
            return self.ctx.original(x)
        if self.cfg.reference_mask == "other":
            ids = torch.where(ids == SHARED_EXAMPLE, torch.full_like(ids, REFERENCE_SHARED), ids)
        with tied_to(self.reference, ids, share=self.share):
            return self.reference(x)

    def full_stream(self) -> tuple[BatchStream, torch.Tensor]:
        """Batches of the full training set, and each row's mask id: its own, or the shared one if discovered."""
        ctx = self.ctx
        retain_ids = ctx.retain_ids if ctx.retain_ids is not None else torch.arange(len(ctx.retain_y))
        x, y = torch.cat([ctx.retain_x, ctx.forget_x]), torch.cat([ctx.retain_y, ctx.forget_y])
        ids = torch.cat([retain_ids.to(y.device), torch.full_like(ctx.forget_y, SHARED_EXAMPLE)])
        return BatchStream(x, y, self.cfg.batch_size, ctx.generator, ctx.augment), ids

    def step(self, loss: torch.Tensor, charged: bool) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.taken, self.charged = self.taken + 1, self.charged + int(charged)
        return loss.detach()

    def log(self, running: torch.Tensor, steps: int) -> None:
        if steps:
            self.curve.append((self.taken, running.item() / steps))  # one host sync per pass
