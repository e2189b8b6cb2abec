"""`ssd` (selective synaptic dampening): scale down the parameters that matter more to the forget set than to the
retain set, by beta = clamp(F_r / (F_f + eps), 0, 1) with F the diagonal Fisher (sum over batches of squared CE
gradients), then fine-tune on retain like `finetune`. The Fisher passes run in eval mode (batch-norm on its running
statistics), as the reference's (`compute_fisher_information_matrix_diagonal` in vision_relearning's
`model_utils.py`). That function leaves the model in eval mode, and the reference's unlearning loop switches back to
train mode only after its first evaluation, at step `--eval-after-steps` (100 in scripts/train.sh): its first 99
fine-tuning steps run in eval mode, batch-norm on the running statistics and not updating them. `eval_mode_steps`
holds that count (99, the reference's); 0 trains in train mode from the first step (the project's earlier choice).
With `augment` the Fisher sees augmented batches too, as the reference's loaders do."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, register_method
from workloads.methods.finetune import Finetune


def fisher_diagonal(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, augment=None, generator=None
) -> list[torch.Tensor]:
    """Sum over consecutive batches of the squared gradient of the batch-mean CE; in eval mode, as the reference."""
    params = list(model.parameters())
    fisher = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    for i in range(0, len(y), batch_size):
        xb = x[i : i + batch_size] if augment is None else augment(x[i : i + batch_size], generator)
        grads = torch.autograd.grad(F.cross_entropy(model(xb), y[i : i + batch_size]), params)
        for f, g in zip(fisher, grads):
            f.add_(g.square())
    model.train(was_training)
    return fisher


def dampening(retain_fisher: torch.Tensor, forget_fisher: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.clamp(retain_fisher / (forget_fisher + eps), 0.0, 1.0)


@dataclass
class SSDConfig(MethodConfig):
    eps: float = MISSING
    eval_mode_steps: int = MISSING  # the first fine-tuning steps that run in eval mode (the reference's 99)


@register_method("ssd")
class SSD(Finetune):
    Config = SSDConfig
    version = 2  # 1: fine-tuning in train mode from its first step
    vmappable = False  # it switches the model between eval and train mode per step

    def retain_loss(self, model, x, y, ctx):
        model.train(ctx.step >= self.cfg.eval_mode_steps)
        return super().retain_loss(model, x, y, ctx)

    def edit_weights(self, model, ctx):
        retain = fisher_diagonal(model, ctx.retain_x, ctx.retain_y, self.cfg.batch_size, ctx.augment, ctx.generator)
        forget = fisher_diagonal(model, ctx.forget_x, ctx.forget_y, self.cfg.batch_size, ctx.augment, ctx.generator)
        with torch.no_grad():
            for p, f_r, f_f in zip(model.parameters(), retain, forget):
                p.mul_(dampening(f_r, f_f, self.cfg.eps))
