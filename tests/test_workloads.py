"""Data, forget-set selection, memorization, training, relearning and weight-space math on hand-checkable cases."""

import torch
from torch import nn

from workloads.data import DigitsConfig, MNIST1DConfig, load_dataset, random_shift_1d
from workloads.forget import ForgetConfig, select_forget_set
from workloads.memorization import memorization_from
from workloads.relearn_sets import attack_indices
from workloads.train import TrainConfig, evaluate, train_classifier
from workloads.weightspace import interpolate_states, l2_distance, linear_mode_connectivity, loss_barrier


def test_builtin_datasets_need_no_download():
    mnist1d = load_dataset("mnist1d", MNIST1DConfig(num_samples=500))
    assert mnist1d.x_train.shape == (400, 1, 40) and mnist1d.x_test.shape == (100, 1, 40)
    digits = load_dataset("digits", DigitsConfig())
    assert digits.x_train.shape[1:] == (1, 8, 8) and set(digits.y_train.tolist()) == set(range(10))


def test_random_shift_moves_each_signal_within_bounds():
    x = torch.arange(1, 11, dtype=torch.float32).repeat(50, 1, 1)
    shifted = random_shift_1d(2)(x, torch.Generator().manual_seed(0))
    offsets = {int((row != 0).nonzero()[0]) - int(row[(row != 0).nonzero()[0]] - 1) for row in shifted[:, 0]}
    assert offsets <= {-2, -1, 0, 1, 2} and len(offsets) > 1


def test_high_mem_forget_set_is_the_most_memorised_and_split_into_pool_and_heldout():
    labels = torch.arange(100) % 4
    scores = torch.linspace(0, 1, 100)
    fs = select_forget_set(
        labels, ForgetConfig(target_class=1, fraction=0.4, criterion="high_mem", attack_pool_fraction=0.2), scores
    )
    class_one = (labels == 1).nonzero().flatten()
    assert set(fs.forget.tolist()) == set(class_one[-10:].tolist())  # the 10 highest scores of class 1
    assert torch.equal(fs.pool, fs.forget[:2]) and torch.equal(fs.heldout, fs.forget[2:])
    assert set(fs.retain.tolist()).isdisjoint(fs.forget.tolist()) and len(fs.retain) + len(fs.forget) == 100
    low = select_forget_set(labels, ForgetConfig(target_class=None, fraction=0.1, criterion="low_mem"), scores)
    assert set(low.forget.tolist()) == set(range(10))


def test_memorization_of_an_example_right_only_when_trained_on_is_one():
    included = torch.tensor([[1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.bool)
    correct = torch.stack([included[:, 0], torch.ones(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)], 1)
    assert memorization_from(included, correct).tolist() == [1.0, 0.0, 0.0]


def test_heldout_forget_examples_never_enter_the_attack_set():
    fs = select_forget_set(torch.arange(200) % 5, ForgetConfig(target_class=None, fraction=0.25), None)
    for k in range(len(fs.pool) + 1):
        used = set(attack_indices(fs, k, "retain").tolist())
        assert used.isdisjoint(fs.heldout.tolist()) and set(fs.pool[:k].tolist()) <= used


def test_training_learns_a_separable_problem():
    torch.manual_seed(0)
    x = torch.randn(256, 1, 8)
    y = (x[:, 0, 0] > 0).long()
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
    train_classifier(model, x, y, TrainConfig(epochs=100, lr=5e-2, augment=False), seed=0)
    assert evaluate(model, x, y, 2)["acc"] > 0.95


def test_l2_counts_parameters_not_running_statistics():
    a, b = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1)), nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        for p in a.parameters():
            p.zero_()
        for p, v in zip(b.parameters(), ([[3.0, 0.0]], [0.0], [4.0], [0.0])):
            p.copy_(torch.tensor(v))
        b[1].running_mean.fill_(100.0)  # must not count
    out = l2_distance(a, a.state_dict(), b.state_dict())
    assert abs(out["l2"] - 5.0) < 1e-6  # sqrt(3^2 + 4^2)
    assert set(out["per_layer"]) == {"0.weight", "0.bias", "1.weight", "1.bias"}


def test_interpolation_midpoint_and_integer_buffers():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([2.0, 4.0]), "n": torch.tensor(9)}
    mid = interpolate_states(a, b, 0.5)
    assert torch.equal(mid["w"], torch.tensor([1.0, 3.0])) and mid["n"].item() == 9


def test_loss_barrier_of_a_known_bump():
    assert loss_barrier([0.0, 0.5, 1.0], [1.0, 3.0, 2.0]) == 3.0 - 1.5
    assert loss_barrier([0.0, 0.5, 1.0], [1.0, 1.5, 2.0]) == 0.0


def test_lmc_endpoints_reproduce_each_model():
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 6), torch.randint(0, 3, (64,))
    a, b = nn.Sequential(nn.Flatten(), nn.Linear(6, 3)), nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    probe = nn.Sequential(nn.Flatten(), nn.Linear(6, 3))
    out = linear_mode_connectivity(probe, a.state_dict(), b.state_dict(), {"test": (x, y)}, 3, stride=0.25)
    assert out["t"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    for model, i in ((a, 0), (b, -1)):
        expected = evaluate(model, x, y, 3)
        assert out["test_loss"][i] == expected["loss"] and out["test_acc"][i] == expected["acc"]
