"""How a workload runs fast without changing what it computes: bf16 autocast where the hardware computes bf16
natively, channels-last memory for image models, optional torch.compile. Config values of every training node; the
precision that actually ran is reported, because on a CPU or an older GPU bf16 falls back to fp32.

`fp32` is IEEE float32 everywhere: on a GPU, TF32 is off for matmuls and convolutions (PyTorch's own default turns it
on for cuDNN convolutions, so an "fp32" run on an A100 or H100 would otherwise be TF32), and a GPU run computes what a
CPU run computes up to the order of float operations. `tf32` lets matmuls and convolutions use TF32 tensor cores on
GPUs that have them (compute capability 8.0 and up: A100, A10G, L4, H100), fp32 elsewhere. The flags are the process's,
so the worker sets them before every node (`set_fp32_math`).
`bf16` autocasts on CUDA GPUs that compute bf16 natively (compute capability 8.0 and up: a T4 or V100 would only
emulate it, so there it runs fp32 and says so);
`bf16_everywhere` also autocasts on CPUs that compute bf16 natively (AVX-512-BF16 or AMX), where it is about 2x
faster for convolutions. `fp16` autocasts to float16 on CUDA GPUs only, as the REM reference trains and evaluates
(src/methods.py: `torch.amp.autocast` around every step, with a GradScaler); `train.fit` scales the loss for it, the
unlearning methods' loops do not yet. None is a default: each changes the numbers (BENCHMARKS.md)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("fp32", "tf32", "bf16", "bf16_everywhere", "fp16")
NATIVE_LOW_PRECISION = (8, 0)  # the compute capability from which a GPU has bf16 and TF32 tensor cores (Ampere)


@dataclass
class SpeedConfig:
    # fp32 | tf32 (TF32 tensor cores on GPUs that have them) | bf16 (autocast on CUDA GPUs that compute it natively) |
    # bf16_everywhere (and native-bf16 CPUs) | fp16 (CUDA only)
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
        native = cuda_computes_bf16_and_tf32(device)
        return ("tf32" if cfg.precision == "tf32" else "bf16") if native else "fp32"
    if cfg.precision == "tf32":
        return "fp32"
    return "bf16" if cfg.precision == "bf16_everywhere" and device.type == "cpu" and cpu_computes_bf16() else "fp32"


def cuda_computes_bf16_and_tf32(device: torch.device) -> bool:
    """Whether this GPU has bf16 and TF32 tensor cores (not torch.cuda.is_bf16_supported(), which by default also
    says yes to a GPU that only emulates bf16 in fp32, as a T4 or a V100 does)."""
    return torch.cuda.get_device_capability(device) >= NATIVE_LOW_PRECISION


def set_fp32_math(precision: str) -> None:
    """The process's float32 matmuls and convolutions on CUDA: TF32 for an effective precision of `tf32`, IEEE for
    every other (autocast's bf16 and fp16 operations are unaffected; what stays fp32 around them is IEEE)."""
    mode = "tf32" if precision == "tf32" else "ieee"
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch 2.9 and later: never mix with the old flags
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
        torch.backends.cudnn.rnn.fp32_precision = mode
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"


def fp32_math() -> dict[str, str]:
    """What float32 matmuls and convolutions compute in on CUDA now: ieee or tf32."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        conv = torch.backends.cudnn.conv.fp32_precision
        return {"matmul": torch.backends.cuda.matmul.fp32_precision, "conv": conv}
    as_mode = lambda allowed: "tf32" if allowed else "ieee"
    return {"matmul": as_mode(torch.backends.cuda.matmul.allow_tf32), "conv": as_mode(torch.backends.cudnn.allow_tf32)}


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
