"""CIFAR-10 and CIFAR-100, registered as `cifar10` and `cifar100`, plus the CIFAR-10-C / CIFAR-100-C corrupted test
sets.

Files live where torchvision keeps them: `<root>/cifar-10-batches-py/{data_batch_1..5,test_batch}` and
`<root>/cifar-100-python/{train,test}`, the python pickles of the official release (`data`: uint8 N x 3072 in
channel-major order, labels under `labels` or, for CIFAR-100, `fine_labels`). Folder names, file names, the
download URL and the md5 of every file are taken from torchvision's CIFAR10/CIFAR100 classes. With `download: true`
a missing folder is fetched and extracted by torchvision (which checks the archive's md5); the batches are then read
by `read_split` below, which checks each file against torchvision's md5 when `verify` is on (the default), so a
cached result can only ever have come from the standard release. `verify: false` reads whatever files are there.

Images become float32 (N, 3, 32, 32) in [0, 1] without normalisation, as in the reference study. Training-time
augmentation is the study's random 32x32 crop of the 4-pixel reflect-padded image plus a random horizontal flip,
done on the device for a whole batch at once (`crop_flip`).

With `corrupted_root` naming an extracted CIFAR-10-C (for cifar100: CIFAR-100-C) folder, the dataset also carries
the corrupted test set the `corrupted_test*` relearning attacks train on: the `corruptions` listed (default: the
reference study's one choice, `jpeg_compression`) at `corruption_severity` (default: the reference's 5), one copy of
the test set per corruption, each checked to have exactly the test set's labels in the test set's order.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import MISSING

from workloads.data.base import Dataset, register_dataset


@dataclass(frozen=True)
class Layout:
    """Where one CIFAR variant's files are and what they must contain."""

    title: str
    folder: str
    train_files: tuple[tuple[str, str], ...]  # (file name, md5)
    test_files: tuple[tuple[str, str], ...]
    label_key: str
    num_classes: int
    url: str
    archive: str
    archive_md5: str


def layout(name: str) -> Layout:
    """The on-disk layout of `cifar10` or `cifar100`, read from torchvision's dataset classes."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls, title, label_key, num_classes = {
        "cifar10": (CIFAR10, "CIFAR-10", "labels", 10),
        "cifar100": (CIFAR100, "CIFAR-100", "fine_labels", 100),
    }[name]
    return Layout(
        title=title,
        folder=cls.base_folder,
        train_files=tuple((f, md5) for f, md5 in cls.train_list),
        test_files=tuple((f, md5) for f, md5 in cls.test_list),
        label_key=label_key,
        num_classes=num_classes,
        url=cls.url,
        archive=cls.filename,
        archive_md5=cls.tgz_md5,
    )


def _how_to_get(lay: Layout, root: Path) -> str:
    files = ", ".join(f for f, _ in lay.train_files + lay.test_files)
    return (
        f"set dataset.args.download: true to fetch {lay.url}, or extract {lay.archive} under {root} "
        f"so that {root / lay.folder} holds {files}"
    )


def _missing(lay: Layout, root: Path) -> list[Path]:
    return [root / lay.folder / f for f, _ in lay.train_files + lay.test_files if not (root / lay.folder / f).is_file()]


def ensure_files(lay: Layout, root: Path, download: bool) -> None:
    """Raises FileNotFoundError naming the first missing file and how to get it; downloads first if allowed."""
    if download and _missing(lay, root):
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(lay.url, str(root), filename=lay.archive, md5=lay.archive_md5)
    missing = _missing(lay, root)
    if missing:
        hint = ""
        if (root / lay.train_files[0][0]).is_file():
            hint = f" ({root} itself holds the batch files: root must be the folder that contains {lay.folder}/)"
        raise FileNotFoundError(f"{lay.title} not found: {missing[0]} does not exist{hint}; {_how_to_get(lay, root)}")


def read_batch(path: Path, label_key: str, expected_md5: Optional[str] = None) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch -> (uint8 (N, 3072), int64 (N,)); checks its md5 first when one is given."""
    if expected_md5 is not None:
        from torchvision.datasets.utils import calculate_md5

        actual = calculate_md5(str(path))
        if actual != expected_md5:
            raise ValueError(
                f"{path}: md5 {actual} is not the official release's {expected_md5}; the file is damaged "
                f"or not the standard one (delete it and download again, or set dataset.args.verify: false "
                f"to read it anyway)"
            )
    with open(path, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    if not isinstance(entry, dict) or "data" not in entry or label_key not in entry:
        found = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(f"{path}: not a CIFAR batch: expected keys 'data' and {label_key!r}, found {found}")
    data, labels = np.asarray(entry["data"]), np.asarray(entry[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(
            f"{path}: expected uint8 data of shape (N, 3072) and N labels, got {data.dtype} "
            f"{data.shape} and {len(labels)} labels"
        )
    return data, labels


def read_split(lay: Layout, root: Path, train: bool, verify: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The train or test split of an extracted CIFAR folder -> float (N, 3, 32, 32) in [0, 1] and int64 labels."""
    parts = [
        read_batch(root / lay.folder / f, lay.label_key, md5 if verify else None)
        for f, md5 in (lay.train_files if train else lay.test_files)
    ]
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([y for _, y in parts])
    if len(labels) and (labels.min() < 0 or labels.max() >= lay.num_classes):
        raise ValueError(f"{root / lay.folder}: labels outside 0..{lay.num_classes - 1}")
    x = torch.from_numpy(data).reshape(-1, 3, 32, 32).float().div_(255)
    return x, torch.from_numpy(labels)


def crop_flip(padding: int = 4, flip: bool = True) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Random crop of the reflect-padded image back to its size, and a random horizontal flip, per image, in one
    gather on the batch's device. The offsets and flips are drawn by the generator on its own device (the CPU's, for
    every node: workloads/train.py `generator_for`) and copied to the batch's without waiting for it."""

    def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, channels, height, width = x.shape
        device = x.device
        draw = lambda values: values.to(device, non_blocking=True)
        padded = F.pad(x, (padding, padding, padding, padding), mode="reflect") if padding else x
        top = draw(torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=generator.device))
        left = draw(torch.randint(0, 2 * padding + 1, (n, 1), generator=generator, device=generator.device))
        rows = top + torch.arange(height, device=device)  # (n, H)
        cols = left + torch.arange(width, device=device)  # (n, W)
        if flip:
            mirrored = draw(torch.rand(n, 1, generator=generator, device=generator.device) < 0.5)
            cols = torch.where(mirrored, cols.flip(1), cols)
        batch = torch.arange(n, device=device).view(n, 1, 1, 1)
        channel = torch.arange(channels, device=device).view(1, channels, 1, 1)
        return padded[batch, channel, rows.view(n, 1, height, 1), cols.view(n, 1, 1, width)]

    return augment


# The 15 corruptions of Hendrycks & Dietterich's benchmark (the CIFAR-10-C folder also holds 4 extra ones:
# speckle_noise, gaussian_blur, spatter, saturate). Any file in the folder can be named in `corruptions`.
CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
REFERENCE_CORRUPTIONS = ("jpeg_compression",)  # what the reference study's corrupted_test attacks train on
REFERENCE_SEVERITY = 5


@dataclass
class CIFARConfig:
    CORRUPTED_TEST_KEY: ClassVar[str] = "corrupted_root"
    ATTACK_ONLY_FIELDS: ClassVar[tuple[str, ...]] = ("corrupted_root", "corruptions", "corruption_severity")
    # Where the files are and how they got there, not what they are (the md5 check covers that): outside every key,
    # so a laptop's data/cifar10 and a cluster's /home/ray/data/cifar10 share cached nodes.
    LOCATION_FIELDS: ClassVar[tuple[str, ...]] = ("root", "download", "verify", "corrupted_root")

    root: str = MISSING  # the folder holding cifar-10-batches-py/ or cifar-100-python/ (torchvision's `root`)
    download: bool = False  # fetch the official archive through torchvision when the files are missing
    verify: bool = True  # check every batch file against the official md5 before reading it
    crop_padding: int = 4  # augmentation: random crop of the reflect-padded image; 0 disables the crop
    flip: bool = True  # augmentation: random horizontal flip
    # The corrupted test set (for the corrupted_test* relearning attacks): an extracted CIFAR-10-C / CIFAR-100-C
    # folder holding labels.npy and <corruption>.npy; null: none.
    corrupted_root: Optional[str] = None
    corruptions: list[str] = field(default_factory=lambda: list(REFERENCE_CORRUPTIONS))
    corruption_severity: int = REFERENCE_SEVERITY  # 1..5


def load_cifar(name: str, cfg: CIFARConfig) -> Dataset:
    lay = layout(name)
    root = Path(cfg.root).expanduser()
    if cfg.crop_padding < 0 or cfg.crop_padding >= 32:
        raise ValueError(f"dataset.args.crop_padding: must be in 0..31, got {cfg.crop_padding}")
    ensure_files(lay, root, cfg.download)
    x_train, y_train = read_split(lay, root, train=True, verify=cfg.verify)
    x_test, y_test = read_split(lay, root, train=False, verify=cfg.verify)
    augment = crop_flip(cfg.crop_padding, cfg.flip) if cfg.crop_padding or cfg.flip else None
    corrupted = {}
    if cfg.corrupted_root is not None:
        x_c, y_c = load_corrupted(cfg.corrupted_root, list(cfg.corruptions), cfg.corruption_severity)
        check_corrupted_labels(y_c, y_test, len(cfg.corruptions), f"{lay.title} test set", cfg.corrupted_root)
        corrupted = {"x_corrupted_test": x_c, "y_corrupted_test": y_c}
    return Dataset(x_train, y_train, x_test, y_test, num_classes=lay.num_classes, augment=augment, **corrupted)


def check_corrupted_labels(y_corrupted: torch.Tensor, y_test: torch.Tensor, copies: int, what: str, where) -> None:
    """The corrupted set must be `copies` copies of the test set, label for label (as the reference asserts)."""
    if len(y_corrupted) != copies * len(y_test) or not torch.equal(y_corrupted, y_test.repeat(copies)):
        raise ValueError(
            f"dataset.args.corrupted_root: the labels in {where} are not those of the {what} "
            f"({len(y_corrupted) // max(copies, 1)} per corruption for {len(y_test)} test images, or in another "
            f"order): is it the corrupted set of another dataset?"
        )


@register_dataset("cifar10", CIFARConfig)
def load_cifar10(cfg: CIFARConfig) -> Dataset:
    return load_cifar("cifar10", cfg)


@register_dataset("cifar100", CIFARConfig)
def load_cifar100(cfg: CIFARConfig) -> Dataset:
    return load_cifar("cifar100", cfg)


SEVERITIES = (1, 2, 3, 4, 5)
CORRUPTED_SOURCES = {
    "CIFAR-10-C": "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
    "CIFAR-100-C": "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar",
}


def load_corrupted(root: str | Path, corruptions: list[str], severity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Test images of the given corruptions at one severity from a CIFAR-10-C / CIFAR-100-C folder.

    The folder holds `labels.npy` and one `<corruption>.npy` per corruption: uint8 (5 * M, 32, 32, 3), the M test
    images at severity 1, then all M at severity 2, ... 5. Returns float (len(corruptions) * M, 3, 32, 32) in [0, 1],
    corruptions in the order given, and their int64 labels.
    """
    root = Path(root).expanduser()
    get = f"download and extract {' or '.join(CORRUPTED_SOURCES.values())} and point to the extracted folder"
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(map(str, SEVERITIES))}, got {severity!r}")
    if not corruptions:
        raise ValueError("corruptions: name at least one corruption")
    if not root.is_dir():
        raise FileNotFoundError(f"corrupted test set folder {root} does not exist; {get}")
    labels_path = root / "labels.npy"
    if not labels_path.is_file():
        raise FileNotFoundError(f"{labels_path} does not exist: {root} is not a CIFAR-10-C style folder; {get}")
    all_labels = np.load(labels_path, mmap_mode="r")
    if all_labels.ndim != 1 or len(all_labels) % len(SEVERITIES):
        raise ValueError(f"{labels_path}: expected {len(SEVERITIES)} x M labels, got shape {all_labels.shape}")
    per = len(all_labels) // len(SEVERITIES)
    window = slice((severity - 1) * per, severity * per)
    xs = []
    for corruption in corruptions:
        path = root / f"{corruption}.npy"
        if not path.is_file():
            known = sorted(p.stem for p in root.glob("*.npy") if p.name != "labels.npy")
            raise FileNotFoundError(f"{path} does not exist; corruptions in {root}: {', '.join(known) or 'none'}")
        images = np.load(path, mmap_mode="r")
        if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3) or len(images) != len(all_labels):
            raise ValueError(
                f"{path}: expected uint8 ({len(all_labels)}, 32, 32, 3) to match {labels_path}, "
                f"got {images.dtype} {images.shape}"
            )
        xs.append(torch.from_numpy(np.array(images[window])).permute(0, 3, 1, 2).contiguous().float().div_(255))
    y = torch.from_numpy(np.array(all_labels[window], dtype=np.int64))
    return torch.cat(xs), y.repeat(len(corruptions))
