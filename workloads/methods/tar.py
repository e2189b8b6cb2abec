"""`tar` (tamper-attack resistance), started from an initial safeguard model: make the forget set stay forgotten
under fine-tuning attacks. Each step, K adversaries (copies of theta) fine-tune on forget batches with Adam; after
each adversary step the gradient of -entropy(p_adv(f)) with respect to the adversary's weights is accumulated,
scaled by 1 / (K * steps) (a first-order estimate of the tamper-resistance gradient at theta). The defender's
gradient is that of alpha * (mean_l MSE(h_l(theta, r), h_l(start, r)) + CE(r)) plus gamma times the accumulated
one, where `start` is the initial safeguard TAR starts from, frozen (the reference copies the model after loading
the safeguard). Version 2: that target; version 1 took the original's hidden states.
"""

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.methods.base import MethodConfig, UnlearningMethod, register_method
from workloads.methods.circuit_breakers import hidden_mse


def negative_entropy(logits: torch.Tensor) -> torch.Tensor:
    log_p = F.log_softmax(logits, -1)
    return (log_p.exp() * log_p).sum(-1).mean()


def tamper_gradient(
    model: torch.nn.Module,
    forget_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    adversaries: int,
    steps: int,
    lr: float,
) -> list[torch.Tensor]:
    """One forget batch per adversary, used for all its steps and for its entropy terms."""
    total = [torch.zeros_like(p) for p in model.parameters()]
    for _, (x, y) in zip(range(adversaries), forget_batches):
        adversary = copy.deepcopy(model)
        params = list(adversary.parameters())
        optimizer = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(adversary(x), y).backward()
            optimizer.step()
            grads = torch.autograd.grad(negative_entropy(adversary(x)), params, allow_unused=True)
            for acc, g in zip(total, grads):
                if g is not None:
                    acc.add_(g, alpha=1.0 / (adversaries * steps))
    return total


@dataclass
class TARConfig(MethodConfig):
    alpha: float = MISSING
    gamma: float = MISSING
    layers: list[int] = MISSING
    adversaries: int = MISSING
    adversary_steps: int = MISSING
    adversary_lr: float = MISSING


@register_method("tar")
class TAR(UnlearningMethod):
    @classmethod
    def batches_per_step(cls, cfg: TARConfig) -> int:  # per adversary step: a cross-entropy step, an entropy gradient
        return super().batches_per_step(cfg) + 2 * cfg.adversaries * cfg.adversary_steps

    Config = TARConfig
    requires_start_model = True
    version = 2

    def retain_loss(self, model, x, y, ctx):
        logits, hidden = model(x, return_hidden=True)
        with torch.no_grad():
            _, reference = ctx.start(x, return_hidden=True)
        return self.cfg.alpha * (hidden_mse(hidden, reference, self.cfg.layers) + F.cross_entropy(logits, y))

    def after_backward(self, model, ctx):
        # Each adversary draws its own forget batch; the one the loop hands a joint step goes unused.
        cfg = self.cfg
        tamper = tamper_gradient(model, ctx.forget_batches, cfg.adversaries, cfg.adversary_steps, cfg.adversary_lr)
        for p, g in zip(model.parameters(), tamper):
            if p.grad is None:
                p.grad = cfg.gamma * g
            else:
                p.grad.add_(g, alpha=cfg.gamma)
