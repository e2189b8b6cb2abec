"""Datasets as tensors, registered by name. Everything stays a tensor so training never touches Python per sample.

Built-ins need no download: `mnist1d` (the MNIST-1D generator, 40-step signals, a few seconds of CPU to make)
and `digits` (scikit-learn's bundled 8x8 digits).

A dataset may also carry a corrupted copy of its test set (same labels, same order, possibly several corrupted
copies one after the other), which the `corrupted_test*` relearning attacks train on. CIFAR reads the published
CIFAR-10-C / CIFAR-100-C files (`workloads/cifar.py`). MNIST-1D and digits have no published corrupted set: with
`corrupted_test: true` they get a *synthetic*, seeded one (Gaussian noise, plus random shifts for MNIST-1D), a
stand-in so the corrupted attacks can run on the quickstart data, not a benchmark anyone else reports on.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

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
    # A corrupted copy of the test set (one or more copies back to back, each with the labels of y_test), or None.
    x_corrupted_test: Optional[torch.Tensor] = None
    y_corrupted_test: Optional[torch.Tensor] = None
    name: str = ""  # the registry name, set by load_dataset (for messages)
    corrupted_key: Optional[str] = None  # the dataset.args key that gives this dataset a corrupted test set

    TENSORS: ClassVar[tuple[str, ...]] = ("x_train", "y_train", "x_test", "y_test", "x_corrupted_test", "y_corrupted_test")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> "Dataset":
        return dataclasses.replace(
            self, **{f: getattr(self, f).to(device) for f in self.TENSORS if getattr(self, f) is not None}
        )

    def corrupted_test(self, needed_by: str = "this") -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the corrupted test set; a ValueError naming the dataset and the config key when there is none."""
        if self.x_corrupted_test is None or self.y_corrupted_test is None:
            raise ValueError(no_corrupted_test_message(self.name or "this dataset", self.corrupted_key, needed_by))
        return self.x_corrupted_test, self.y_corrupted_test


def no_corrupted_test_message(name: str, key: Optional[str], needed_by: str) -> str:
    how = (f"set dataset.args.{key} to give it one" if key is not None
           else "it has no corrupted test set to offer")
    return f"{needed_by} needs a corrupted test set, which dataset {name!r} does not have as configured: {how}"


def corrupted_test_key(config: Any) -> Optional[str]:
    """The config key that switches on a dataset's corrupted test set (the config class's CORRUPTED_TEST_KEY)."""
    return getattr(type(config), "CORRUPTED_TEST_KEY", None)


def attack_only_fields(config_class: type) -> tuple[str, ...]:
    """Config fields that only feed relearning attacks (the corrupted test copy): no model's training reads them,
    so they stay out of every other node's content key and switching them on reuses the models."""
    return getattr(config_class, "ATTACK_ONLY_FIELDS", ())


def location_fields(config_class: type) -> tuple[str, ...]:
    """Config fields that say where the data lives, not what it is: they stay out of content keys."""
    return getattr(config_class, "LOCATION_FIELDS", ())


def provides_corrupted_test(config: Any) -> bool:
    """Whether a dataset loaded with `config` will carry a corrupted test set."""
    key = corrupted_test_key(config)
    return key is not None and bool(getattr(config, key))


def _first_test(x: Optional[torch.Tensor], test_size: int, limit: Optional[int]) -> Optional[torch.Tensor]:
    """The first `limit` examples of each corrupted copy of a test set of `test_size` examples."""
    if x is None or limit is None or test_size == 0:
        return x
    copies = len(x) // test_size
    return x.reshape(copies, test_size, *x.shape[1:])[:, :limit].reshape(-1, *x.shape[1:])


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
        n_test = len(d.y_test)
        d = dataclasses.replace(d, x_train=d.x_train[:limit_train], y_train=d.y_train[:limit_train],
                                x_test=d.x_test[:limit_test], y_test=d.y_test[:limit_test],
                                x_corrupted_test=_first_test(d.x_corrupted_test, n_test, limit_test),
                                y_corrupted_test=_first_test(d.y_corrupted_test, n_test, limit_test),
                                name=name, corrupted_key=corrupted_test_key(config))
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


def synthetic_corruption(x: torch.Tensor, noise: float, max_shift: int, seed: int,
                         clamp: Optional[tuple[float, float]] = None) -> torch.Tensor:
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


def _check_corruption(noise: float, max_shift: int = 0) -> None:
    if noise < 0:
        raise ValueError(f"dataset.args.corruption_noise: must be >= 0, got {noise}")
    if max_shift < 0:
        raise ValueError(f"dataset.args.corruption_shift: must be >= 0, got {max_shift}")


@dataclass
class MNIST1DConfig:
    CORRUPTED_TEST_KEY: ClassVar[str] = "corrupted_test"
    ATTACK_ONLY_FIELDS: ClassVar[tuple[str, ...]] = ("corrupted_test", "corruption_noise", "corruption_shift", "corruption_seed")

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
        _check_corruption(cfg.corruption_noise, cfg.corruption_shift)
        corrupted = {"x_corrupted_test": synthetic_corruption(x_test, cfg.corruption_noise, cfg.corruption_shift, cfg.corruption_seed),
                     "y_corrupted_test": y_test.clone()}
    return Dataset(
        as_x(raw["x"]), as_y(raw["y"]), x_test, y_test, num_classes=10,
        augment=random_shift_1d(cfg.max_shift) if cfg.max_shift > 0 else None, **corrupted,
    )


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
        _check_corruption(cfg.corruption_noise)
        corrupted = {"x_corrupted_test": synthetic_corruption(x[test], cfg.corruption_noise, 0, cfg.corruption_seed, clamp=(0.0, 1.0)),
                     "y_corrupted_test": y[test].clone()}
    return Dataset(x[train], y[train], x[test], y[test], num_classes=10, **corrupted)
from workloads import cifar  # noqa: E402,F401  registers cifar10, cifar100
