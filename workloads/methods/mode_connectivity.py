"""`mode_connectivity`: CE(r) + alpha * max(-CE(f_mid(x), y), -gamma) on x = r concatenated with f, where f_mid is the
model at mix * theta + (1 - mix) * theta_0 (the midpoint by default), floating-point buffers included: raise the
loss barrier between the original and the unlearned model, so the two stop being linearly connected. gamma caps how
far the midpoint loss is pushed up. theta_0 is always the original, even when chained after another method.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING
from torch.func import functional_call

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method


def mixed_state(model: torch.nn.Module, original: torch.nn.Module, mix: float) -> dict[str, torch.Tensor]:
    """Parameters and floating-point buffers at mix * model + (1 - mix) * original, differentiable in the model's
    parameters; integer buffers (batch-norm's step counter) are the model's."""
    params0, buffers0 = dict(original.named_parameters()), dict(original.named_buffers())
    state = {name: (1.0 - mix) * params0[name].detach() + mix * p for name, p in model.named_parameters()}
    for name, b in model.named_buffers():
        state[name] = (1.0 - mix) * buffers0[name] + mix * b if torch.is_floating_point(b) else b
    return state


@dataclass
class ModeConnectivityConfig(MethodConfig):
    alpha: float = MISSING
    gamma: float = MISSING
    mix: float = MISSING


@register_method("mode_connectivity")
class ModeConnectivity(UnlearningMethod):
    Config = ModeConnectivityConfig

    def joint_loss(self, model, retain_batch, forget_batch, ctx):
        (xr, yr), (xf, yf) = retain_batch, forget_batch
        x, y = torch.cat([xr, xf]), torch.cat([yr, yf])
        mid_loss = -F.cross_entropy(functional_call(model, mixed_state(model, ctx.original, self.cfg.mix), (x,)), y)
        return F.cross_entropy(model(xr), yr) + self.cfg.alpha * torch.clamp(mid_loss, min=-self.cfg.gamma)
