"""What every classifier is: a registry entry that builds a `Blocks` model (stem, blocks, head), so each returns logits,
or (logits, hidden states) with return_hidden=True: hidden[0] is the stem's output and hidden[i] the output of block
i, the layers representation-based methods read. Entry modules live beside this one."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from workloads.registry import Configured, Registry, register_configured

MODELS: Registry[Configured] = Registry("model")


def register_model(name: str, config: type):
    return register_configured(MODELS, name, config)


def build_model(name: str, config: Any, input_shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """Same (name, config, seed) -> same initial weights, on any machine: the retrain shares the original's init."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS.get(name).make(config, input_shape, num_classes)


class Blocks(nn.Module):
    """A stem, a sequence of blocks and a head; exposes every block's output for hidden-state losses."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module):
        super().__init__()
        self.stem, self.blocks, self.head = stem, nn.ModuleList(blocks), head
        self.autocast_dtype: Optional[torch.dtype] = None  # set by workloads.speed; outputs stay float32

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        if self.autocast_dtype is None:
            return self._forward(x, return_hidden)
        with torch.autocast(device_type=x.device.type, dtype=self.autocast_dtype):
            out = self._forward(x, return_hidden)
        # Losses and metrics are computed on float32 outputs, outside autocast, whatever ran inside.
        return (out[0].float(), [h.float() for h in out[1]]) if return_hidden else out.float()

    def _forward(self, x: torch.Tensor, return_hidden: bool):
        h = self.stem(x)
        hidden = [h]
        for block in self.blocks:
            h = block(h)
            hidden.append(h)
        logits = self.head(h)
        return (logits, hidden) if return_hidden else logits
