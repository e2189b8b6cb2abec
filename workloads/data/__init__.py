"""Datasets by registry name. Importing this package registers every entry module: `mnist1d` and `digits` (no
download), `cifar10` and `cifar100` (the official files, with CIFAR-10-C / CIFAR-100-C corrupted test sets)."""

from workloads.data import cifar, digits, mnist1d  # noqa: F401  registration
from workloads.data.base import (
    DATASETS,
    Dataset,
    attack_only_fields,
    corrupted_test_key,
    load_dataset,
    location_fields,
    no_corrupted_test_message,
    provides_corrupted_test,
    register_dataset,
)
from workloads.data.digits import DigitsConfig
from workloads.data.mnist1d import MNIST1DConfig
from workloads.data.synthetic import random_shift_1d, synthetic_corruption

__all__ = [
    "DATASETS",
    "Dataset",
    "DigitsConfig",
    "MNIST1DConfig",
    "attack_only_fields",
    "corrupted_test_key",
    "load_dataset",
    "location_fields",
    "no_corrupted_test_message",
    "provides_corrupted_test",
    "random_shift_1d",
    "register_dataset",
    "synthetic_corruption",
]
