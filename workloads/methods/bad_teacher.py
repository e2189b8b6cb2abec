"""`bad_teacher` (Chundawat et al. 2023) as the REM study's reference code runs it (`BadT` in if-loops/rem
`src/methods.py`): batches of the full training set, one student forward each, distilled from a per-row mixture of
teachers, the competent one (the frozen original) for retain rows and an incompetent one (the same architecture,
freshly initialised, biases zero) for discovered rows: KL(p_teacher || p_theta) at temperature T with `kl_div`'s
default `mean` reduction (over rows x classes). Both teachers run in eval mode (batch-norm on running statistics; the
incompetent one's are reset), as the reference's. Its loop's learning-rate schedule and returned checkpoint (the
weights after 6 of 10 epochs) are reference_loop.py's.

`bad_teacher_joint` is the project's earlier form: a retain batch distilled from the competent teacher plus a
forget batch from the incompetent one every step. `kl_reduction` and `teacher_mode` hold the earlier choices
(`batchmean`, `train`) as their other values, and `incompetent_bias: init` keeps the incompetent teacher's biases as
its layers initialise them.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import UnlearningMethod, check_choice, frozen_copy, register_method
from workloads.methods.reference_loop import ReferenceLoop, ReferenceLoopConfig
from workloads.methods.retrain import reinitialise
from workloads.methods.scrub import KL_REDUCTIONS, kl_to_target


def teacher_mixture(competent: torch.Tensor, incompetent: torch.Tensor, discovered: torch.Tensor, t: float):
    """Per row, softmax(incompetent / T) where discovered, else softmax(competent / T)."""
    return torch.where(discovered[:, None], F.softmax(incompetent / t, -1), F.softmax(competent / t, -1))


def distillation(student: torch.Tensor, teacher_probs: torch.Tensor, t: float, reduction: str) -> torch.Tensor:
    """KL(teacher_probs || softmax(student / T)) with torch's `kl_div` reduction (no T^2 factor, as the reference)."""
    return kl_to_target(student / t, teacher_probs, reduction)


@dataclass
class BadTeacherConfig(ReferenceLoopConfig):
    temperature: float = MISSING
    kl_reduction: str = MISSING  # mean (the reference's) | batchmean | sum
    teacher_mode: str = MISSING  # eval (the reference's) | train
    incompetent_bias: str = MISSING  # zero (the reference's) | init: the layers' own initialisation

    def __post_init__(self):
        super().__post_init__()
        check_choice(self, "kl_reduction", KL_REDUCTIONS)
        check_choice(self, "teacher_mode", ("eval", "train"))
        check_choice(self, "incompetent_bias", ("zero", "init"))


@register_method("bad_teacher_joint", schedule="joint", version=1)
@register_method("bad_teacher")
class BadTeacher(ReferenceLoop, UnlearningMethod):
    Config = BadTeacherConfig
    schedule = "full"
    version = 2  # 1: joint batches, batchmean, teachers in train mode, initialised biases, constant lr, last weights

    def edit_weights(self, model, ctx):
        """No edit: builds the incompetent teacher, a fresh initialisation (another seed than the original's) with
        the biases of its convolutions and linear layers at zero, as the reference's `initialize_weights`."""
        self.incompetent = frozen_copy(model)
        reinitialise(self.incompetent, ctx.seed + 1)
        if self.cfg.incompetent_bias == "init":
            return
        with torch.no_grad():
            for module in self.incompetent.modules():
                if isinstance(module, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)) and module.bias is not None:
                    module.bias.zero_()

    def teachers(self, ctx):
        train = self.cfg.teacher_mode == "train"
        return ctx.original.train(train), self.incompetent.train(train)

    def full_loss(self, model, x, y, discovered, ctx):
        competent, incompetent = self.teachers(ctx)
        student = model(x)
        with torch.no_grad():
            target = teacher_mixture(competent(x), incompetent(x), discovered, self.cfg.temperature)
        return distillation(student, target, self.cfg.temperature, self.cfg.kl_reduction)

    def retain_loss(self, model, x, y, ctx):
        return self.distil_from(self.teachers(ctx)[0], model, x)

    def forget_loss(self, model, x, y, ctx):
        return self.distil_from(self.teachers(ctx)[1], model, x)

    def distil_from(self, teacher, model, x):
        with torch.no_grad():
            target = F.softmax(teacher(x) / self.cfg.temperature, -1)
        return distillation(model(x), target, self.cfg.temperature, self.cfg.kl_reduction)
