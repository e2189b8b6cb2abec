"""The training labels a plan needs (the attack pool's size and the forget set are functions of them), cached on
this machine by the dataset's identity, so that planning or re-running a sweep whose data it has seen before
neither generates nor reads the data: the quickstart's MNIST-1D takes seconds to generate, CIFAR a disk read.

The cache key is the dataset part of every content key (location fields hidden), so it promises no more than the
keys do. It lives in this machine's cache folder (orchestrator/local_cache.py)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from orchestrator.local_cache import cache_dir
from orchestrator.plan.identity import canonical_json, key_view, sha256_hex
from workloads.nodes import dataset_for


@dataclass(frozen=True)
class Labels:
    y_train: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]  # of one example
    test_size: int


def training_labels(dataset: dict) -> tuple[Labels, bool]:
    """The dataset's training labels, and whether they came from the cache (then the data itself was not read)."""
    identity = sha256_hex(canonical_json({"labels": 2, **key_view({"dataset": dataset})["dataset"]}))
    path = cache_dir() / "labels" / f"{identity}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            return Labels(
                saved["y_train"], int(saved["num_classes"]), tuple(saved["input_shape"]), int(saved["test_size"])
            ), True
        except (OSError, RuntimeError, KeyError, EOFError, TypeError):
            pass  # a damaged cache entry is rebuilt below
    data = dataset_for({"dataset": dataset})
    labels = Labels(data.y_train.cpu(), data.num_classes, tuple(data.input_shape), len(data.y_test))
    _save(
        path,
        {
            "y_train": labels.y_train,
            "num_classes": labels.num_classes,
            "input_shape": list(labels.input_shape),
            "test_size": labels.test_size,
        },
    )
    return labels, False


def _save(path: Path, value: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
            torch.save(value, tmp)
        os.replace(tmp.name, path)
    except OSError:
        pass  # a read-only home only costs the next plan the data load
