"""`ssd` (selective synaptic dampening): scale down the parameters that matter more to the forget set than to the
retain set, by beta = clamp(F_r / (F_f + eps), 0, 1) with F the diagonal Fisher (sum over batches of squared CE
gradients), then fine-tune on retain like `finetune`."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, register_method
from workloads.methods.finetune import Finetune


def fisher_diagonal(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Sum over consecutive batches of the squared gradient of the batch-mean CE; in eval mode, as the reference."""
    params = list(model.parameters())
    fisher = [torch.zeros_like(p) for p in params]
    was_training = model.training
    model.eval()
    for i in range(0, len(y), batch_size):
        grads = torch.autograd.grad(F.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size]), params)
        for f, g in zip(fisher, grads):
            f.add_(g.square())
    model.train(was_training)
    return fisher


def dampening(retain_fisher: torch.Tensor, forget_fisher: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.clamp(retain_fisher / (forget_fisher + eps), 0.0, 1.0)


@dataclass
class SSDConfig(MethodConfig):
    eps: float = MISSING


@register_method("ssd")
class SSD(Finetune):
    Config = SSDConfig

    def edit_weights(self, model, ctx):
        retain = fisher_diagonal(model, ctx.retain_x, ctx.retain_y, self.cfg.batch_size)
        forget = fisher_diagonal(model, ctx.forget_x, ctx.forget_y, self.cfg.batch_size)
        with torch.no_grad():
            for p, f_r, f_f in zip(model.parameters(), retain, forget):
                p.mul_(dampening(f_r, f_f, self.cfg.eps))
