"""`bad_teacher` (Chundawat et al. 2023), a baseline of the REM study: distil the competent teacher (the frozen
original) on the retain set and an incompetent one (the same architecture, randomly initialised from the seed) on
the forget set: KL(p_teacher || p_theta) at temperature T on each, per example (`batchmean`)."""

from dataclasses import dataclass

import torch
from omegaconf import MISSING

from workloads.methods.base import OptimizerConfig, UnlearningMethod, frozen_copy, register_method
from workloads.methods.retrain import reinitialise
from workloads.methods.scrub import kl_from_teacher


def distillation(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch."""
    return kl_from_teacher(student_logits / temperature, teacher_logits / temperature, "batchmean")


@dataclass
class BadTeacherConfig(OptimizerConfig):
    temperature: float = MISSING


@register_method("bad_teacher")
class BadTeacher(UnlearningMethod):
    Config = BadTeacherConfig

    def edit_weights(self, model, ctx):
        """No edit: builds the incompetent teacher, a fresh initialisation (another seed than the original's)."""
        self.incompetent = frozen_copy(model)
        reinitialise(self.incompetent, ctx.seed + 1)
        self.incompetent.train()  # in train mode, like the competent teacher (base.py)

    def retain_loss(self, model, x, y, ctx):
        with torch.no_grad():
            teacher = ctx.original(x)
        return distillation(model(x), teacher, self.cfg.temperature)

    def forget_loss(self, model, x, y, ctx):
        with torch.no_grad():
            teacher = self.incompetent(x)
        return distillation(model(x), teacher, self.cfg.temperature)
