"""Datasets as tensors, registered by name. Everything stays a tensor so training never touches Python per sample.

Built-ins need no download: `mnist1d` (the MNIST-1D generator, 40-step signals, a few seconds of CPU to make)
and `digits` (scikit-learn's bundled 8x8 digits).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch

from workloads.registry import Configured, Registry, register_configured


@dataclass
class Dataset:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    # Batched, on-device augmentation: (x, generator) -> x. None means no augmentation exists for this data.
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> "Dataset":
        return dataclasses.replace(
            self, **{f: getattr(self, f).to(device) for f in ("x_train", "y_train", "x_test", "y_test")}
        )


DATASETS: Registry[Configured] = Registry("dataset")


def register_dataset(name: str, config: type):
    return register_configured(DATASETS, name, config)


_CACHE: dict[tuple, Dataset] = {}


def load_dataset(name: str, config: Any, device: torch.device | str = "cpu",
                 limit_train: Optional[int] = None, limit_test: Optional[int] = None) -> Dataset:
    """Loads a registered dataset onto `device` (optionally only its first examples), memoised per process and
    device, so a worker keeps it resident."""
    key = (name, repr(config), str(device), limit_train, limit_test)
    if key not in _CACHE:
        full = (name, repr(config), "cpu", None, None)
        if full not in _CACHE:
            _CACHE[full] = DATASETS.get(name).make(config)
        d = _CACHE[full]
        d = dataclasses.replace(d, x_train=d.x_train[:limit_train], y_train=d.y_train[:limit_train],
                                x_test=d.x_test[:limit_test], y_test=d.y_test[:limit_test])
        _CACHE[key] = d.to(device)
    return _CACHE[key]


def random_shift_1d(max_shift: int) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Translate each (N, C, L) signal by its own integer offset in [-max_shift, max_shift], zero-filled."""

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, channels, length = x.shape
        shifts = torch.randint(-max_shift, max_shift + 1, (n, 1), generator=generator, device=x.device)
        source = torch.arange(length, device=x.device) - shifts
        inside = (source >= 0) & (source < length)
        index = source.clamp(0, length - 1).unsqueeze(1).expand(n, channels, length)
        return x.gather(2, index) * inside.unsqueeze(1)

    return augment


@dataclass
class MNIST1DConfig:
    num_samples: int = 6000
    train_split: float = 0.8
    seed: int = 42
    max_shift: int = 0  # on-device augmentation: random translation, 0 disables it


@register_dataset("mnist1d", MNIST1DConfig)
def load_mnist1d(cfg: MNIST1DConfig) -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = cfg.num_samples, cfg.train_split, cfg.seed
    raw = make_dataset(args)
    as_x = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32).unsqueeze(1)  # (N, 1, 40)
    as_y = lambda a: torch.tensor(np.asarray(a), dtype=torch.long)
    return Dataset(
        as_x(raw["x"]), as_y(raw["y"]), as_x(raw["x_test"]), as_y(raw["y_test"]), num_classes=10,
        augment=random_shift_1d(cfg.max_shift) if cfg.max_shift > 0 else None,
    )


@dataclass
class DigitsConfig:
    test_fraction: float = 0.2
    seed: int = 0


@register_dataset("digits", DigitsConfig)
def load_digits(cfg: DigitsConfig) -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))
    n_test = int(round(len(y) * cfg.test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Dataset(x[train], y[train], x[test], y[test], num_classes=10)
from workloads import cifar  # noqa: E402,F401  registers cifar10, cifar100
