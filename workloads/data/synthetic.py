"""Seeded synthetic corruptions for datasets with no published corrupted test set (MNIST-1D, digits): a stand-in so
the `corrupted_test*` relearning attacks can run on the quickstart data, not a benchmark anyone else reports on.
Also the 1-D random shift that MNIST-1D uses as on-device augmentation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch


def random_shift_1d(max_shift: int) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Translate each (N, C, L) signal by its own integer offset in [-max_shift, max_shift], zero-filled."""

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, channels, length = x.shape
        shifts = torch.randint(-max_shift, max_shift + 1, (n, 1), generator=generator, device=generator.device)
        shifts = shifts.to(x.device, non_blocking=True)  # drawn on the generator's device: the CPU's (train.py)
        source = torch.arange(length, device=x.device) - shifts
        inside = (source >= 0) & (source < length)
        index = source.clamp(0, length - 1).unsqueeze(1).expand(n, channels, length)
        return x.gather(2, index) * inside.unsqueeze(1)

    return augment


def synthetic_corruption(
    x: torch.Tensor, noise: float, max_shift: int, seed: int, clamp: Optional[tuple[float, float]] = None
) -> torch.Tensor:
    """A seeded corrupted copy of `x`: additive Gaussian noise of std `noise`, then (for (N, C, L) signals) a random
    translation of each example by up to `max_shift` steps, then optionally clamped to the data's range. The same
    (x, noise, max_shift, seed) always gives the same copy."""
    generator = torch.Generator().manual_seed(seed)
    corrupted = x.cpu() + noise * torch.randn(x.shape, generator=generator)
    if max_shift > 0:
        corrupted = random_shift_1d(max_shift)(corrupted, generator)
    if clamp is not None:
        corrupted = corrupted.clamp(*clamp)
    return corrupted.to(x.device)


def check_corruption(noise: float, max_shift: int = 0) -> None:
    if noise < 0:
        raise ValueError(f"dataset.args.corruption_noise: must be >= 0, got {noise}")
    if max_shift < 0:
        raise ValueError(f"dataset.args.corruption_shift: must be >= 0, got {max_shift}")
