"""How a workload runs fast without changing what it computes: bf16 autocast where the hardware computes bf16
natively, channels-last memory for image models, optional torch.compile. Config values of every training node; the
precision that actually ran is reported, because on a CPU or an older GPU bf16 falls back to fp32.

`bf16` autocasts on CUDA GPUs only (what it always meant, so stored results keep their meaning);
`bf16_everywhere` also autocasts on CPUs that compute bf16 natively (AVX-512-BF16 or AMX), where it is about 2x
faster for convolutions. `fp16` autocasts to float16 on CUDA GPUs only, as the REM reference trains and evaluates
(src/methods.py: `torch.amp.autocast` around every step, with a GradScaler); `train.fit` scales the loss for it, the
unlearning methods' loops do not yet. None is a default: each changes the numbers (BENCHMARKS.md)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "bf16_everywhere", "fp16")


@dataclass
class SpeedConfig:
    # fp32 | bf16 (autocast on CUDA GPUs that support it) | bf16_everywhere (and native-bf16 CPUs) | fp16 (CUDA only)
    precision: str = "fp32"
    channels_last: bool = False  # NHWC memory for 4-D image batches
    compile: bool = False  # torch.compile the model in place


def effective_precision(cfg: SpeedConfig, device: torch.device) -> str:
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"speed.precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    if cfg.precision == "fp32":
        return "fp32"
    if cfg.precision == "fp16":
        return "fp16" if device.type == "cuda" else "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cfg.precision == "bf16_everywhere" and device.type == "cpu" and cpu_computes_bf16() else "fp32"


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX-512-BF16 or AMX), not just bf16 storage emulated in fp32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def prepare_model(model: nn.Module, cfg: SpeedConfig, device: torch.device) -> nn.Module:
    """In place, so state_dict keys stay those of the plain module. bf16 and fp16 run the forward pass under autocast
    (models.Blocks returns float32 outputs, so losses and backward stay outside it, as autocast recommends)."""
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    precision = effective_precision(cfg, device)
    if precision in ("bf16", "fp16"):
        model.autocast_dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if cfg.compile:
        model.compile()
    return model


def prepare_images(x: torch.Tensor, cfg: SpeedConfig) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last and x.dim() == 4 else x
