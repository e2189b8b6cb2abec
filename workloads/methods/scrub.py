"""SCRUB: stay close to the original (teacher) on the retain set, move away from it on the forget set.

retain: alpha * KL(p_orig(r) || p_theta(r)) + gamma * CE(r);  forget: -KL(p_orig(f) || p_theta(f)).
`scrub` takes both terms every step, `alternating_scrub` alternates full passes (the reference's default), and
`uniform_scrub` replaces the forget term by KL(uniform || p_theta(f)): pull the forget predictions to chance rather
than push them away from the teacher without bound.
`kl_reduction` is torch's: the reference ran `mean` (element-wise mean over batch x classes); `batchmean` is the
true per-example KL. Both are recorded with the run because they differ by a factor of the number of classes.
"""

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method

KL_REDUCTIONS = ("mean", "batchmean", "sum")


def kl_to_target(student_logits: torch.Tensor, target_probs: torch.Tensor, reduction: str) -> torch.Tensor:
    """KL(target || p_student) with torch's `kl_div` reduction semantics."""
    if reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be one of {KL_REDUCTIONS}, got {reduction!r}")
    with warnings.catch_warnings():
        # 'mean' is chosen on purpose (the reference's setting) and recorded with the run; torch's advice is not news.
        warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss", category=UserWarning)
        return F.kl_div(F.log_softmax(student_logits, -1), target_probs, reduction=reduction)


def kl_from_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor, reduction: str) -> torch.Tensor:
    return kl_to_target(student_logits, F.softmax(teacher_logits, -1), reduction)


def kl_from_uniform(student_logits: torch.Tensor, reduction: str) -> torch.Tensor:
    return kl_to_target(student_logits, torch.full_like(student_logits, 1.0 / student_logits.shape[-1]), reduction)


@dataclass
class ScrubConfig(MethodConfig):
    alpha: float = MISSING
    gamma: float = MISSING
    kl_reduction: str = MISSING


@register_method("uniform_scrub", forget_target="uniform")
@register_method("alternating_scrub", schedule="alternating")
@register_method("scrub")
class Scrub(UnlearningMethod):
    Config = ScrubConfig
    vmappable = True
    forget_target = "teacher"  # or "uniform": pull forget predictions to chance instead of away from the teacher

    def retain_loss(self, model, x, y, ctx):
        logits = model(x)
        with torch.no_grad():
            teacher = ctx.original(x)
        return self.cfg.alpha * kl_from_teacher(
            logits, teacher, self.cfg.kl_reduction
        ) + self.cfg.gamma * F.cross_entropy(logits, y)

    def forget_loss(self, model, x, y, ctx):
        if self.forget_target == "uniform":
            return kl_from_uniform(model(x), self.cfg.kl_reduction)
        with torch.no_grad():
            teacher = ctx.original(x)
        return -kl_from_teacher(model(x), teacher, self.cfg.kl_reduction)
