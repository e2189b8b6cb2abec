"""`mnist1d`: the MNIST-1D generator's 40-step signals (no download; a few seconds of CPU to make), the quickstart's
data. With `corrupted_test: true` it carries a synthetic, seeded corrupted copy of its test set (`synthetic.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from workloads.data.base import Dataset, register_dataset
from workloads.data.synthetic import check_corruption, random_shift_1d, synthetic_corruption


@dataclass
class MNIST1DConfig:
    CORRUPTED_TEST_KEY: ClassVar[str] = "corrupted_test"
    ATTACK_ONLY_FIELDS: ClassVar[tuple[str, ...]] = (
        "corrupted_test",
        "corruption_noise",
        "corruption_shift",
        "corruption_seed",
    )

    num_samples: int = 6000
    train_split: float = 0.8
    seed: int = 42
    max_shift: int = 0  # on-device augmentation: random translation, 0 disables it
    # A synthetic corrupted copy of the test set (MNIST-1D has no published one), for the corrupted_test* attacks:
    corrupted_test: bool = False
    corruption_noise: float = 0.5  # std of the added Gaussian noise (the signals have std about 1)
    corruption_shift: int = 4  # each signal translated by up to this many of its 40 steps, zero-filled
    corruption_seed: int = 0


@register_dataset("mnist1d", MNIST1DConfig)
def load_mnist1d(cfg: MNIST1DConfig) -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = cfg.num_samples, cfg.train_split, cfg.seed
    raw = make_dataset(args)
    as_x = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32).unsqueeze(1)  # (N, 1, 40)
    as_y = lambda a: torch.tensor(np.asarray(a), dtype=torch.long)
    x_test, y_test = as_x(raw["x_test"]), as_y(raw["y_test"])
    corrupted = {}
    if cfg.corrupted_test:
        check_corruption(cfg.corruption_noise, cfg.corruption_shift)
        corrupted = {
            "x_corrupted_test": synthetic_corruption(
                x_test, cfg.corruption_noise, cfg.corruption_shift, cfg.corruption_seed
            ),
            "y_corrupted_test": y_test.clone(),
        }
    return Dataset(
        as_x(raw["x"]),
        as_y(raw["y"]),
        x_test,
        y_test,
        num_classes=10,
        augment=random_shift_1d(cfg.max_shift) if cfg.max_shift > 0 else None,
        **corrupted,
    )
