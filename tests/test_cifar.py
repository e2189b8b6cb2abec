"""CIFAR loading through the registered loader, on tiny folders written in the official on-disk format; the on-device
crop/flip augmentation; the CIFAR-10-C corrupted test set."""

import dataclasses
import hashlib
import pickle

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from workloads.data import DATASETS, load_dataset
from workloads.data.cifar import CIFARConfig, crop_flip, layout, load_corrupted, read_split

PER_BATCH, TEST_SIZE = 4, 6


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_batch(path, data: np.ndarray, labels: dict) -> None:
    """A batch as the official release stores it: a pickled dict with `data` uint8 (N, 3072) and label lists."""
    entry = {"batch_label": path.name, "data": data, "filenames": [f"img_{i}.png" for i in range(len(data))]}
    entry.update({key: list(map(int, values)) for key, values in labels.items()})
    path.write_bytes(pickle.dumps(entry, protocol=2))


def write_cifar10(root) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {"train_x": [], "train_y": []}
    for b in range(1, 6):
        data, labels = images(PER_BATCH, b), (np.arange(PER_BATCH) + b) % 10
        write_batch(folder / f"data_batch_{b}", data, {"labels": labels})
        written["train_x"].append(data)
        written["train_y"].append(labels)
    written["test_x"], written["test_y"] = images(TEST_SIZE, 99), np.arange(TEST_SIZE) % 10
    write_batch(folder / "test_batch", written["test_x"], {"labels": written["test_y"]})
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2))
    return {k: np.concatenate(v) if isinstance(v, list) else v for k, v in written.items()}


def write_cifar100(root) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    train_fine, test_fine = np.array([99, 0, 57, 23, 81, 12, 64, 5]), np.array([42, 98, 7])
    write_batch(
        folder / "train", images(len(train_fine), 1), {"fine_labels": train_fine, "coarse_labels": train_fine // 5}
    )
    write_batch(folder / "test", images(len(test_fine), 2), {"fine_labels": test_fine, "coarse_labels": test_fine // 5})
    return {"train_y": train_fine, "test_y": test_fine}


def test_cifar10_loads_the_official_layout_as_unnormalised_images(tmp_path):
    written = write_cifar10(tmp_path)
    d = load_dataset("cifar10", CIFARConfig(root=str(tmp_path), verify=False))
    assert d.x_train.shape == (5 * PER_BATCH, 3, 32, 32) and d.x_test.shape == (TEST_SIZE, 3, 32, 32)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.long and d.num_classes == 10
    assert d.x_train.min() >= 0.0 and d.x_train.max() <= 1.0 and d.x_train.max() > 0.9
    # the 3072 bytes of a row are the red plane, then green, then blue, each row-major: pixel (0, 1) red is byte 1
    expected = torch.from_numpy(written["train_x"]).float().div(255).reshape(-1, 3, 32, 32)
    assert torch.equal(d.x_train, expected)
    as_byte = lambda v: int((v * 255).round())
    assert (
        as_byte(d.x_train[7, 1, 0, 0]) == written["train_x"][7, 1024]
        and as_byte(d.x_train[7, 0, 0, 1]) == written["train_x"][7, 1]
    )
    assert d.y_train.tolist() == written["train_y"].tolist() and d.y_test.tolist() == written["test_y"].tolist()
    assert d.augment is not None


def test_cifar100_reads_the_fine_labels(tmp_path):
    written = write_cifar100(tmp_path)
    d = load_dataset("cifar100", CIFARConfig(root=str(tmp_path), verify=False))
    assert d.num_classes == 100 and d.x_train.shape == (8, 3, 32, 32) and d.x_test.shape == (3, 3, 32, 32)
    assert d.y_train.tolist() == written["train_y"].tolist() and d.y_test.tolist() == written["test_y"].tolist()


def test_both_are_registered_and_need_a_root():
    assert {"cifar10", "cifar100"} <= set(DATASETS.names())
    assert DATASETS.get("cifar10").config is CIFARConfig
    assert OmegaConf.missing_keys(OmegaConf.structured(CIFARConfig)) == {"root"}


def test_files_are_checked_against_the_official_md5_unless_told_not_to(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(ValueError, match="md5") as error:
        load_dataset("cifar10", CIFARConfig(root=str(tmp_path)))  # verify is on by default
    official = dict(layout("cifar10").train_files)["data_batch_1"]
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in str(error.value) and official in str(error.value)
    assert "verify: false" in str(error.value)
    # the same check passes when the expected digests are those of the files on disk
    lay = layout("cifar10")
    digest = lambda f: hashlib.md5((tmp_path / lay.folder / f).read_bytes()).hexdigest()
    ours = dataclasses.replace(lay, train_files=tuple((f, digest(f)) for f, _ in lay.train_files))
    x, y = read_split(ours, tmp_path, train=True, verify=True)
    assert x.shape == (5 * PER_BATCH, 3, 32, 32) and len(y) == 5 * PER_BATCH


def test_missing_data_names_the_path_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("cifar10", CIFARConfig(root=str(tmp_path / "nowhere")))
    message = str(error.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py" / "data_batch_1") in message
    assert "download: true" in message and "cifar-10-python.tar.gz" in message
    write_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="root must be the folder that contains cifar-10-batches-py"):
        load_dataset("cifar10", CIFARConfig(root=str(tmp_path / "cifar-10-batches-py"), verify=False))
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", CIFARConfig(root=str(tmp_path)))


def test_download_does_not_fetch_when_the_files_are_there(tmp_path):
    write_cifar10(tmp_path)  # no network here: this only passes if nothing is fetched
    d = load_dataset("cifar10", CIFARConfig(root=str(tmp_path), download=True, verify=False))
    assert len(d.y_train) == 5 * PER_BATCH


def reflect_windows(image: np.ndarray, padding: int) -> dict:
    """Every crop (top, left, flipped) of the reflect-padded image, keyed by its bytes."""
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)), mode="reflect")
    size = image.shape[-1]
    windows = {}
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            window = padded[:, top : top + size, left : left + size]
            windows[window.tobytes()] = (top, left, False)
            windows[window[:, :, ::-1].copy().tobytes()] = (top, left, True)
    return windows


def test_augmentation_is_a_seeded_random_flipped_window_of_the_reflect_padded_image():
    image = torch.arange(3 * 32 * 32, dtype=torch.float32).reshape(3, 32, 32) / 3072  # every pixel distinct
    x = image.expand(300, 3, 32, 32).contiguous()
    augment = crop_flip(padding=4, flip=True)
    out = augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, augment(x, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, augment(x, torch.Generator().manual_seed(1)))
    windows = reflect_windows(image.numpy(), 4)
    seen = [windows.get(o.numpy().tobytes()) for o in out]
    assert None not in seen  # each output is exactly one crop of the padded image, maybe mirrored
    tops, lefts, flips = zip(*seen)
    assert set(tops) == set(range(9)) and set(lefts) == set(range(9)) and set(flips) == {True, False}
    assert 0.35 < np.mean(flips) < 0.65
    assert crop_flip(padding=0, flip=False)(x, torch.Generator().manual_seed(0)).equal(x)


def test_augmentation_is_off_when_both_parts_are(tmp_path):
    write_cifar10(tmp_path)
    d = load_dataset("cifar10", CIFARConfig(root=str(tmp_path), verify=False, crop_padding=0, flip=False))
    assert d.augment is None


def write_corrupted(folder, per: int = 4, corruptions=("fog", "gaussian_noise")) -> np.ndarray:
    """CIFAR-10-C layout: labels.npy and <corruption>.npy, uint8 (5 * per, 32, 32, 3), severity 1 first."""
    folder.mkdir()
    labels = np.tile(np.arange(per) * 2, 5)
    np.save(folder / "labels.npy", labels)
    for c, name in enumerate(corruptions):
        data = np.zeros((5 * per, 32, 32, 3), dtype=np.uint8)
        for i in range(5 * per):
            severity, image = divmod(i, per)
            data[i, ..., 0] = 10 * (severity + 1) + image  # red encodes severity and image
            data[i, ..., 1] = 100 + c  # green encodes the corruption
        np.save(folder / f"{name}.npy", data)
    return labels


def test_corrupted_loader_takes_the_requested_severity_of_each_corruption(tmp_path):
    labels = write_corrupted(tmp_path / "CIFAR-10-C")
    x, y = load_corrupted(tmp_path / "CIFAR-10-C", ["gaussian_noise", "fog"], severity=3)
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and x.is_contiguous()
    assert (x[:, 0, 5, 5] * 255).round().tolist() == [30, 31, 32, 33] * 2
    assert (x[:, 1, 0, 0] * 255).round().tolist() == [101] * 4 + [100] * 4
    assert x[:, 2].max() == 0 and y.dtype == torch.long and y.tolist() == labels[8:12].tolist() * 2
    x5, _ = load_corrupted(str(tmp_path / "CIFAR-10-C"), ["fog"], severity=5)
    assert (x5[:, 0, 0, 0] * 255).round().tolist() == [50, 51, 52, 53]


def test_corrupted_loader_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="CIFAR-10-C.tar"):
        load_corrupted(tmp_path / "absent", ["fog"], 1)
    write_corrupted(tmp_path / "c")
    with pytest.raises(FileNotFoundError, match=r"snow\.npy does not exist; corruptions in .*: fog, gaussian_noise"):
        load_corrupted(tmp_path / "c", ["snow"], 1)
    for bad in (0, 6, 2.0):
        with pytest.raises(ValueError, match="severity must be one of 1, 2, 3, 4, 5"):
            load_corrupted(tmp_path / "c", ["fog"], bad)
    (tmp_path / "c" / "labels.npy").unlink()
    with pytest.raises(FileNotFoundError, match="labels.npy"):
        load_corrupted(tmp_path / "c", ["fog"], 1)
