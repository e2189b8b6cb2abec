"""What the REM study's reference loop (`Naive.unlearn` and `train_one_epoch` in if-loops/rem `src/methods.py`) adds to
the methods that run through it, Bad Teacher and SalUn (REM, NPO and Potion have loops of their own):

- the learning rate: its SGD gets the `LinearLR` of `src/utils.py`, built with t = 1.25 T and T // 100 warm-up steps
  for a budget of T steps, and stepped after every optimiser step: lr * (s + 1) / (w + 1) at step s < w, then
  lr * (1 - (s - w) / (1.25 T)), about 0.21 lr at the last of 980 steps (`lr_schedule: warmup_linear`; `constant`
  keeps lr, the project's earlier choice);
- the model it returns: the loop scores test accuracy after epochs 6, 11, 16, ... (`curr_epoch % 5 == 0`, counted
  from 0) and returns the best of those checkpoints. Within the study's 10 epochs the only one is after epoch 6, so
  its Bad Teacher and SalUn rows are the models after 6 of 10 epochs. `checkpoint_epoch: 6` returns that model (the
  steps after it change nothing returned); 0 returns the last step's weights, the project's earlier choice. With a
  budget holding several checkpoints the reference would pick one by test accuracy, which a method here cannot see.
"""

import copy
from dataclasses import dataclass

from omegaconf import MISSING

from workloads.methods.base import OptimizerConfig, check_choice
from workloads.train import steps_for


def warmup_linear(step: int, total: int) -> float:
    """The reference's LinearLR factor at `step` (from 0) of a budget of `total` steps."""
    warmup = total // 100
    return (step + 1) / (warmup + 1) if step < warmup else 1.0 - (step - warmup) / (1.25 * total)


@dataclass
class ReferenceLoopConfig(OptimizerConfig):
    lr_schedule: str = MISSING  # warmup_linear (the reference's) | constant
    checkpoint_epoch: int = MISSING  # return the weights after this many epochs (the reference's 6); 0: the last

    def __post_init__(self):
        check_choice(self, "lr_schedule", ("warmup_linear", "constant"))


class ReferenceLoop:
    """Mixin for an UnlearningMethod whose config is a ReferenceLoopConfig."""

    def make_optimizer(self, model):
        self.optimizer, self.checkpoint = super().make_optimizer(model), None
        return self.optimizer

    def before_step(self, model, ctx):
        super().before_step(model, ctx)
        if self.cfg.lr_schedule == "warmup_linear":
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.lr * warmup_linear(ctx.step, ctx.total_steps)
        if self.cfg.checkpoint_epoch and ctx.step == self.checkpoint_step(ctx):
            self.checkpoint = copy.deepcopy(model.state_dict())  # the weights after `checkpoint_epoch` epochs

    def after_step(self, model, ctx):
        super().after_step(model, ctx)
        if ctx.step == ctx.total_steps - 1 and self.checkpoint is not None:
            model.load_state_dict(self.checkpoint)
            ctx.report["returned_after_steps"] = self.checkpoint_step(ctx)

    def checkpoint_step(self, ctx) -> int:
        """Steps in `checkpoint_epoch` epochs of the full training set."""
        return self.cfg.checkpoint_epoch * steps_for(1, ctx.train_size, self.cfg.batch_size)
