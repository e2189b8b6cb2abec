"""`retrain`: the oracle, training from scratch on the retain set only. In a sweep it is the `train_retrain` node that
every sweep builds (with the full pretraining recipe); run as a method, it re-initialises the weights and descends
CE on the retain set with the method's optimiser settings."""

import copy

import torch

from workloads.methods.base import register_method
from workloads.methods.finetune import Finetune


@torch.no_grad()
def reinitialise(model: torch.nn.Module, seed: int) -> None:
    """Each module's own initialiser in registration order, from `seed` on a CPU copy: for a model built by
    `build_model` with the same seed this is its initial weights again, whatever the device."""
    fresh = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in fresh.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    model.load_state_dict(fresh.state_dict())


@register_method("retrain")
class Retrain(Finetune):
    is_oracle = True

    def edit_weights(self, model, ctx):
        reinitialise(model, ctx.seed)
