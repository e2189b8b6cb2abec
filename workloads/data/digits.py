"""`digits`: scikit-learn's bundled 8x8 handwritten digits (no download), a seeded train/test split. With
`corrupted_test: true` it carries a synthetic, seeded corrupted copy of its test set (`synthetic.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from workloads.data.base import Dataset, register_dataset
from workloads.data.synthetic import check_corruption, synthetic_corruption


@dataclass
class DigitsConfig:
    CORRUPTED_TEST_KEY: ClassVar[str] = "corrupted_test"
    ATTACK_ONLY_FIELDS: ClassVar[tuple[str, ...]] = ("corrupted_test", "corruption_noise", "corruption_seed")

    test_fraction: float = 0.2
    seed: int = 0
    # A synthetic corrupted copy of the test set (no published one exists), for the corrupted_test* attacks:
    corrupted_test: bool = False
    corruption_noise: float = 0.25  # std of the Gaussian noise added to pixels in [0, 1], then clamped to [0, 1]
    corruption_seed: int = 0


@register_dataset("digits", DigitsConfig)
def load_digits(cfg: DigitsConfig) -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))
    n_test = int(round(len(y) * cfg.test_fraction))
    test, train = order[:n_test], order[n_test:]
    corrupted = {}
    if cfg.corrupted_test:
        check_corruption(cfg.corruption_noise)
        corrupted = {
            "x_corrupted_test": synthetic_corruption(
                x[test], cfg.corruption_noise, 0, cfg.corruption_seed, clamp=(0.0, 1.0)
            ),
            "y_corrupted_test": y[test].clone(),
        }
    return Dataset(x[train], y[train], x[test], y[test], num_classes=10, **corrupted)
