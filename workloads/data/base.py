"""What every dataset is: tensors (training never touches Python per sample), a registry filled by the entry modules
beside this one, and the per-process cache that keeps a loaded dataset resident on its device.

A dataset may also carry a corrupted copy of its test set (same labels, same order, possibly several corrupted
copies one after the other), which the `corrupted_test*` relearning attacks train on. CIFAR reads the published
CIFAR-10-C / CIFAR-100-C files (`cifar.py`); MNIST-1D and digits get a synthetic stand-in (`synthetic.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

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

    TENSORS: ClassVar[tuple[str, ...]] = (
        "x_train",
        "y_train",
        "x_test",
        "y_test",
        "x_corrupted_test",
        "y_corrupted_test",
    )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str, channels_last: bool = False) -> Dataset:
        """On `device`; with `channels_last`, the training and test images (4-D) in NHWC memory, in the same copy."""
        images = ("x_train", "x_test") if channels_last else ()
        layout = {f: torch.channels_last for f in images if getattr(self, f).dim() == 4}
        return dataclasses.replace(
            self,
            **{
                f: getattr(self, f).to(device, memory_format=layout.get(f, torch.preserve_format))
                for f in self.TENSORS
                if getattr(self, f) is not None
            },
        )

    def corrupted_test(self, needed_by: str = "this") -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the corrupted test set; a ValueError naming the dataset and the config key when there is none."""
        if self.x_corrupted_test is None or self.y_corrupted_test is None:
            raise ValueError(no_corrupted_test_message(self.name or "this dataset", self.corrupted_key, needed_by))
        return self.x_corrupted_test, self.y_corrupted_test


def no_corrupted_test_message(name: str, key: Optional[str], needed_by: str) -> str:
    how = f"set dataset.args.{key} to give it one" if key is not None else "it has no corrupted test set to offer"
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


def load_dataset(
    name: str,
    config: Any,
    device: torch.device | str = "cpu",
    limit_train: Optional[int] = None,
    limit_test: Optional[int] = None,
    channels_last: bool = False,
) -> Dataset:
    """Loads a registered dataset onto `device` (optionally only its first examples, optionally its images in NHWC
    memory), memoised per process, device and layout, so a worker keeps it resident, and once: every node of a worker
    gets the same tensors, and a worker on a GPU keeps no CPU copy beside them (a second view of the data there, other
    limits or another layout, reads its files again)."""
    key = (name, repr(config), str(device), limit_train, limit_test, channels_last)
    if key not in _CACHE:
        full = (name, repr(config), "cpu", None, None, False)
        source = _CACHE[full] if full in _CACHE else DATASETS.get(name).make(config)
        if torch.device(device).type == "cpu":
            _CACHE[full] = source
        _CACHE[key] = _first(source, name, config, limit_train, limit_test).to(device, channels_last)
    return _CACHE[key]


def _first(d: Dataset, name: str, config: Any, limit_train: Optional[int], limit_test: Optional[int]) -> Dataset:
    """The dataset's first examples (views of its tensors, no copy), named by its registry entry."""
    n_test = len(d.y_test)
    return dataclasses.replace(
        d,
        x_train=d.x_train[:limit_train],
        y_train=d.y_train[:limit_train],
        x_test=d.x_test[:limit_test],
        y_test=d.y_test[:limit_test],
        x_corrupted_test=_first_test(d.x_corrupted_test, n_test, limit_test),
        y_corrupted_test=_first_test(d.y_corrupted_test, n_test, limit_test),
        name=name,
        corrupted_key=corrupted_test_key(config),
    )
