"""Every relearning attack set of the reference study: what the attacker trains on, checked by content on data
where every example says who it is; corrupted test sets (CIFAR-10-C files, seeded synthetic ones); a few real
relearning steps with each set, directly and through the orchestrator's handler."""

import pickle

import numpy as np
import pytest
import torch
from torch import nn

from orchestrator.spec import SpecError, load_spec
from tests.conftest import QUICKSTART
from workloads.data import DATASETS, Dataset, DigitsConfig, MNIST1DConfig, load_dataset, synthetic_corruption
from workloads.data.cifar import CIFARConfig
from workloads.evaluation import EvaluationConfig
from workloads.forget import ForgetConfig, ForgetSet, select_forget_set
from workloads.nodes import NODE_KINDS, DatasetRef, InputNode, ModelRef, RelearnNodeConfig, RunContext
from workloads.nodes.common import node_model
from workloads.relearn import RelearnConfig, relearn
from workloads.relearn_sets import RELEARN_SETS, attack_indices, attacker_set, usable_ks, uses_corrupted_test
from workloads.speed import SpeedConfig

GRID = [0, 1, 5, 10, 50, 100]
CLASSES, TARGET = 5, 2
N_TRAIN, N_TEST = 3000, 400
# x of test example j is TEST_BASE + j, of its corrupted copy CORRUPTED_BASE + j
TEST_BASE, CORRUPTED_BASE = 10_000, 20_000


def identifiable(forget: ForgetConfig) -> tuple[Dataset, ForgetSet]:
    """x encodes the example: train i -> i, test j -> TEST_BASE + j, corrupted test j -> CORRUPTED_BASE + j.
    With canaries, the training labels carry their wrong labels, as in the orchestrator."""
    ids = lambda start, n: (start + torch.arange(n, dtype=torch.float32)).view(n, 1, 1).expand(n, 1, 3).clone()
    y_train, y_test = torch.arange(N_TRAIN) % CLASSES, (torch.arange(N_TEST) * 7) % CLASSES
    fs = select_forget_set(y_train, forget, num_classes=CLASSES)
    data = Dataset(
        ids(0, N_TRAIN),
        fs.training_labels(y_train),
        ids(TEST_BASE, N_TEST),
        y_test,
        CLASSES,
        x_corrupted_test=ids(CORRUPTED_BASE, N_TEST),
        y_corrupted_test=y_test.clone(),
        name="ids",
    )
    return data, fs


def decode(data: Dataset, x: torch.Tensor, y: torch.Tensor) -> dict[str, list[int]]:
    """Which training, test and corrupted-test examples (x, y) holds; every row's label must be its example's."""
    assert (x == x[:, :, :1]).all()
    code = x[:, 0, 0].long()
    train, test, corrupted = (
        code[code < TEST_BASE],
        code[(code >= TEST_BASE) & (code < CORRUPTED_BASE)] - TEST_BASE,
        code[code >= CORRUPTED_BASE] - CORRUPTED_BASE,
    )
    assert torch.equal(y[code < TEST_BASE], data.y_train[train])
    assert torch.equal(y[(code >= TEST_BASE) & (code < CORRUPTED_BASE)], data.y_test[test])
    assert torch.equal(y[code >= CORRUPTED_BASE], data.y_corrupted_test[corrupted])
    return {"train": train.tolist(), "test": test.tolist(), "corrupted": corrupted.tolist()}


@pytest.mark.parametrize("target_class, fraction", [(TARGET, 0.5), (None, 0.2)])
def test_every_set_gives_exactly_its_examples_and_never_a_heldout_one_or_a_canary(target_class, fraction):
    data, fs = identifiable(ForgetConfig(target_class=target_class, fraction=fraction, seed=3, canary_fraction=0.05))
    assert len(fs.canaries) > 0
    # The pool is the first 20% of the permuted forget set, the held-out examples the rest.
    assert torch.equal(fs.pool, fs.forget[: int(0.2 * len(fs.forget))]) and torch.equal(
        fs.heldout, fs.forget[len(fs.pool) :]
    )
    never = set(fs.heldout.tolist()) | set(fs.canaries.tolist())
    forget = set(fs.forget.tolist())
    all_test = list(range(N_TEST))
    target_test = [j for j in all_test if data.y_test[j] != target_class]
    target_retain = [i for i in fs.retain.tolist() if data.y_train[i] == target_class]
    sets = [s for s in RELEARN_SETS if target_class is not None or not s.endswith("+retain_cls")]
    checked = 0
    for relearn_set in sets:
        ks = usable_ks(GRID, relearn_set, len(fs.pool))
        assert ks == [k for k in GRID if k <= len(fs.pool) and (k > 0 or relearn_set != "only_forget")]
        for k in ks:
            x, y = attacker_set(data, fs, k, relearn_set, target_class)
            got = decode(data, x, y)
            train = got["train"]
            assert never.isdisjoint(train), (relearn_set, k)
            assert len(train) == len(set(train))  # no example twice
            given = [i for i in train if i in forget]
            assert sorted(given) == sorted(fs.pool[:k].tolist())  # exactly the first k of the pool
            others = sorted(i for i in train if i not in forget)
            expected_others = {
                "retain": fs.retain.tolist(),
                "only_forget": [],
                "test": [],
                "corrupted_test": [],
                "test+retain_cls": target_retain,
                "corrupted_test+retain_cls": target_retain,
            }[relearn_set]
            assert others == sorted(expected_others), (relearn_set, k)
            test_part = {
                "test": all_test,
                "corrupted_test": all_test,
                "test+retain_cls": target_test,
                "corrupted_test+retain_cls": target_test,
            }.get(relearn_set, [])
            key = "corrupted" if uses_corrupted_test(relearn_set) else "test"
            assert sorted(got[key]) == test_part and got["corrupted" if key == "test" else "test"] == []
            # the index view agrees with the tensors
            assert sorted(attack_indices(fs, k, relearn_set, data.y_train, target_class).tolist()) == sorted(train)
            checked += 1
    assert checked >= len(sets) * 4
    if target_class is not None:
        assert target_retain and len(target_test) < N_TEST  # the replacement really happened


def test_the_attacker_set_does_not_depend_on_the_model_or_the_call():
    data, fs = identifiable(ForgetConfig(target_class=TARGET, fraction=0.5, seed=1))
    for relearn_set in RELEARN_SETS:
        first, second = attacker_set(data, fs, 5, relearn_set, TARGET), attacker_set(data, fs, 5, relearn_set, TARGET)
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_impossible_sets_are_refused_with_a_reason():
    data, fs = identifiable(ForgetConfig(target_class=TARGET, fraction=0.5, seed=1))
    with pytest.raises(ValueError, match="only_forget with k=0 would train on no example"):
        attacker_set(data, fs, 0, "only_forget")
    with pytest.raises(ValueError, match=r"k=\d+ must be in 0\.\.60"):
        attacker_set(data, fs, len(fs.pool) + 1, "retain")
    with pytest.raises(ValueError, match="relearn_set must be one of"):
        attacker_set(data, fs, 1, "validation")
    with pytest.raises(ValueError, match="forget.target_class"):
        attacker_set(data, fs, 1, "test+retain_cls", None)
    with pytest.raises(ValueError, match="target class 3, but the forget set holds classes \\[2\\]"):
        attacker_set(data, fs, 1, "corrupted_test+retain_cls", 3)
    anywhere_data, anywhere = identifiable(ForgetConfig(target_class=None, fraction=0.2, seed=1))
    with pytest.raises(ValueError, match="drawn from the target class"):
        attacker_set(anywhere_data, anywhere, 1, "test+retain_cls", 0)
    digits = load_dataset("digits", DigitsConfig())
    digits_fs = select_forget_set(digits.y_train, ForgetConfig(target_class=1, fraction=0.2))
    with pytest.raises(ValueError, match=r"'digits' does not have.*set dataset\.args\.corrupted_test"):
        attacker_set(digits, digits_fs, 1, "corrupted_test")


def write_cifar10_with_c(tmp_path, corruptions=("jpeg_compression", "fog")):
    """A tiny CIFAR-10 in the official pickles and a CIFAR-10-C folder for it (uint8 (5 * M, 32, 32, 3) per
    corruption, severity 1 first; pixel (0, 0) says severity, image and corruption)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batch = lambda n, labels: {
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "labels": list(map(int, labels)),
    }
    for b in range(1, 6):
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch(4, np.arange(4) + b)))
    test_labels = np.array([3, 1, 4, 1, 5, 9])
    (folder / "test_batch").write_bytes(pickle.dumps(batch(6, test_labels)))
    c_folder = tmp_path / "CIFAR-10-C"
    c_folder.mkdir()
    np.save(c_folder / "labels.npy", np.tile(test_labels, 5).astype(np.uint8))
    for c, name in enumerate(corruptions):
        images = np.zeros((30, 32, 32, 3), dtype=np.uint8)
        for i in range(30):
            images[i, 0, 0] = (i // 6 + 1, i % 6, c)  # severity, image, corruption in the red, green, blue channels
        np.save(c_folder / f"{name}.npy", images)
    return test_labels, c_folder


def test_cifar10_c_files_load_into_the_dataset_checked_against_the_test_labels(tmp_path):
    test_labels, c_folder = write_cifar10_with_c(tmp_path)
    plain = DATASETS.get("cifar10").make(CIFARConfig(root=str(tmp_path), verify=False))
    assert plain.x_corrupted_test is None and CIFARConfig().corruptions == ["jpeg_compression"]
    d = load_dataset("cifar10", CIFARConfig(root=str(tmp_path), verify=False, corrupted_root=str(c_folder)))
    assert d.x_corrupted_test.shape == (6, 3, 32, 32) and torch.equal(d.y_corrupted_test, d.y_test)
    pixel = (d.x_corrupted_test[:, :, 0, 0] * 255).round().long()
    assert pixel.tolist() == [[5, j, 0] for j in range(6)]  # the reference's severity 5, image j, jpeg_compression
    both = CIFARConfig(
        root=str(tmp_path),
        verify=False,
        corrupted_root=str(c_folder),
        corruptions=["fog", "jpeg_compression"],
        corruption_severity=2,
    )
    d2 = load_dataset("cifar10", both, limit_test=4)  # the first 4 test images of each corrupted copy
    pixel = (d2.x_corrupted_test[:, :, 0, 0] * 255).round().long()
    assert pixel.tolist() == [[2, j, c] for c in (1, 0) for j in range(4)]
    assert d2.y_corrupted_test.tolist() == test_labels[:4].tolist() * 2 and d2.name == "cifar10"
    moved = d2.to("meta")
    assert moved.x_corrupted_test.device.type == "meta" and moved.y_corrupted_test.device.type == "meta"
    np.save(c_folder / "labels.npy", np.tile(test_labels[::-1], 5).astype(np.uint8))  # another dataset's labels
    with pytest.raises(ValueError, match="corrupted_root: the labels in .* are not those of the CIFAR-10 test set"):
        DATASETS.get("cifar10").make(CIFARConfig(root=str(tmp_path), verify=False, corrupted_root=str(c_folder)))


def test_synthetic_corruption_is_seeded_and_keeps_the_labels():
    x = torch.randn(50, 1, 40, generator=torch.Generator().manual_seed(0))
    a, b, other = (
        synthetic_corruption(x, 0.5, 4, seed=0),
        synthetic_corruption(x, 0.5, 4, seed=0),
        synthetic_corruption(x, 0.5, 4, seed=1),
    )
    assert torch.equal(a, b) and not torch.equal(a, other) and not torch.equal(a, x) and a.shape == x.shape
    cfg = MNIST1DConfig(num_samples=500, corrupted_test=True)
    first, second = DATASETS.get("mnist1d").make(cfg), DATASETS.get("mnist1d").make(cfg)
    assert torch.equal(first.x_corrupted_test, second.x_corrupted_test) and torch.equal(
        first.y_corrupted_test, first.y_test
    )
    assert first.x_corrupted_test.shape == first.x_test.shape and not torch.equal(first.x_corrupted_test, first.x_test)
    assert DATASETS.get("mnist1d").make(MNIST1DConfig(num_samples=500)).x_corrupted_test is None
    digits = DATASETS.get("digits").make(DigitsConfig(corrupted_test=True))
    again = DATASETS.get("digits").make(DigitsConfig(corrupted_test=True, corruption_seed=0))
    other_seed = DATASETS.get("digits").make(DigitsConfig(corrupted_test=True, corruption_seed=1))
    assert torch.equal(digits.x_corrupted_test, again.x_corrupted_test)
    assert not torch.equal(digits.x_corrupted_test, other_seed.x_corrupted_test)
    assert digits.x_corrupted_test.min() >= 0 and digits.x_corrupted_test.max() <= 1
    assert torch.equal(digits.y_corrupted_test, digits.y_test)


@pytest.fixture(scope="module")
def digits_attack():
    data = load_dataset("digits", DigitsConfig(corrupted_test=True))
    fs = select_forget_set(data.y_train, ForgetConfig(target_class=3, fraction=0.2, seed=0))
    return data, fs


def test_a_few_relearning_steps_with_every_set(digits_attack):
    data, fs = digits_attack
    steps = set()
    for relearn_set in RELEARN_SETS:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        cfg = RelearnConfig(
            relearn_set=relearn_set, lr=1e-2, final_lr=1e-3, epochs=0.15, batch_size=64, eval_every=1, report_last=2
        )
        out = relearn(model, data, fs, 2, cfg, seed=0, target_class=3)
        assert len(out["curve"]) == out["steps"] == 3 and all(0 <= acc <= 1 for _, acc in out["curve"])
        assert out["train_examples"] == len(attacker_set(data, fs, 2, relearn_set, 3)[1])
        assert out["relearn_set"] == relearn_set and out["k"] == 2 and 0 <= out["heldout_forget_acc"] <= 1
        steps.add(out["steps"])
    assert len(steps) == 1  # the full-training-set epoch convention, whatever the attacker's set's size


def test_the_handler_attacks_with_the_configured_set(digits_attack):
    data, fs = digits_attack
    config = RelearnNodeConfig(
        dataset=DatasetRef(name="digits", args={"corrupted_test": True}),
        model=ModelRef(name="mlp", args={"hidden": [16]}),
        speed=SpeedConfig(),
        forget=ForgetConfig(target_class=3),
        relearn=RelearnConfig(relearn_set="corrupted_test+retain_cls", epochs=0.1, batch_size=64, eval_every=1),
        evaluation=EvaluationConfig(),
        k=1,
        seed=0,
    )
    state = node_model(config, data, torch.device("cpu")).state_dict()
    ctx = RunContext(torch.device("cpu"), data, fs)
    out = NODE_KINDS.get("relearn").run(config, {"model": InputNode({}, lambda: state)}, ctx)
    assert {"curve", "heldout_forget_acc", "test_acc", "steps", "train_examples"} <= set(out.result)
    assert out.result["relearn_set"] == "corrupted_test+retain_cls" and out.result["k"] == 1
    assert out.curves["heldout_forget_acc"] == out.result["curve"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["relearn.relearn_set=test+retain_cls"], "needs a forget set drawn from one class: set forget.target_class"),
        (["relearn.relearn_set=corrupted_test"], "'mnist1d' does not have .*set dataset.args.corrupted_test"),
        (
            ["relearn.relearn_set=holdout"],
            "must be one of corrupted_test, corrupted_test\\+retain_cls, only_forget, retain",
        ),
    ],
)
def test_the_sweep_file_is_checked_before_anything_runs(overrides, message):
    with pytest.raises(SpecError, match=f"relearn.relearn_set: .*{message}"):
        load_spec(QUICKSTART, overrides)
    load_spec(
        QUICKSTART,
        ["relearn.relearn_set=corrupted_test+retain_cls", "forget.target_class=2", "dataset.args.corrupted_test=true"],
    )
