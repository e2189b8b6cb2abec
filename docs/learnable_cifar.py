"""Writes small CIFAR-10 files in the official layout whose images a narrow ResNet can learn, for measuring what the
study's fidelity choices move on its smoke profile (docs/fidelity.md): random images teach nothing, so every choice
would move nothing.

Each class is a 4x4-block colour template (seeded), shifted by up to 3 pixels and overlaid with Gaussian noise; 10%
of the training labels are flipped to another class, so there is something to memorise.

    python docs/learnable_cifar.py cifar --train 1000 --test 300
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np


def images(labels: np.ndarray, templates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((len(labels), 3, 32, 32), dtype=np.float32)
    for i, label in enumerate(labels):
        dy, dx = rng.integers(-3, 4, size=2)
        out[i] = np.roll(templates[label], (dy, dx), axis=(1, 2))
    out += rng.normal(0, 40, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def write_batch(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    entry = {
        "batch_label": path.name,
        "data": data,
        "labels": list(map(int, labels)),
        "filenames": [f"img_{i}.png" for i in range(len(data))],
    }
    path.write_bytes(pickle.dumps(entry, protocol=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    blocks = rng.uniform(0, 255, (10, 3, 8, 8)).astype(np.float32)
    templates = blocks.repeat(4, axis=2).repeat(4, axis=3)  # 10 classes x 3 x 32 x 32
    train_y = np.arange(args.train) % 10
    noisy = train_y.copy()
    flipped = rng.choice(args.train, round(args.flip * args.train), replace=False)
    noisy[flipped] = (train_y[flipped] + rng.integers(1, 10, len(flipped))) % 10
    train_x = images(train_y, templates, rng)  # drawn from the true class; the label may lie
    folder = Path(args.root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for b, part in enumerate(np.array_split(np.arange(args.train), 5), start=1):
        write_batch(folder / f"data_batch_{b}", train_x[part], noisy[part])
    test_y = np.arange(args.test) % 10
    write_batch(folder / "test_batch", images(test_y, templates, rng), test_y)
    print(f"{folder}: {args.train} training images ({len(flipped)} labels flipped), {args.test} test images")


if __name__ == "__main__":
    main()
