"""How a workload runs fast without changing what it computes: bf16 autocast where the GPU supports it,
channels-last memory for image models, optional torch.compile. Config values of every training node; the
precision that actually ran is reported, because on a CPU or an older GPU bf16 falls back to fp32."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")


@dataclass
class SpeedConfig:
    precision: str = "fp32"  # fp32 | bf16 (autocast on CUDA GPUs that support it)
    channels_last: bool = False  # NHWC memory for 4-D image batches
    compile: bool = False  # torch.compile the model in place


def effective_precision(cfg: SpeedConfig, device: torch.device) -> str:
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"speed.precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    bf16_ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return "bf16" if cfg.precision == "bf16" and bf16_ok else "fp32"


def prepare_model(model: nn.Module, cfg: SpeedConfig, device: torch.device) -> nn.Module:
    """In place, so state_dict keys stay those of the plain module. bf16 runs the forward pass under autocast
    (models.Blocks returns float32 outputs, so losses and backward stay outside it, as autocast recommends)."""
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if effective_precision(cfg, device) == "bf16":
        model.autocast_dtype = torch.bfloat16
    if cfg.compile:
        model.compile()
    return model


def prepare_images(x: torch.Tensor, cfg: SpeedConfig) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last and x.dim() == 4 else x
