"""A long training node resumes from its last periodic checkpoint and ends with exactly the weights and loss curve of
an uninterrupted run (model, optimizer, schedule, batch order and the loss accumulated since the last curve point
are all in the checkpoint). A checkpoint that cannot be read starts training over; one that cannot be written (a
full disk: /dev/full, a real device that answers every write with ENOSPC) is skipped and training goes on."""

import errno
import os
import pickle

import pytest
import torch
from torch import nn

from workloads.checkpoint import TrainingCheckpoint
from workloads.train import TrainConfig, train_classifier

pytestmark = pytest.mark.fault

CFG = TrainConfig(epochs=6, batch_size=16, lr=1e-2, weight_decay=1e-4, augment=False)


class Preempted(BaseException):
    """The process dying right after a checkpoint was written."""


class DiesAfter(TrainingCheckpoint):
    def save(self, state):
        written = super().save(state)
        if self.saves == 2:
            raise Preempted
        return written


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(100, 8, generator=g), torch.randint(0, 3, (100,), generator=g)


def train(checkpoint=None):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = data()
    curve = train_classifier(model, x, y, CFG, seed=5, checkpoint=checkpoint)
    return model.state_dict(), curve


def assert_same(a, b):
    (state_a, curve_a), (state_b, curve_b) = a, b
    assert curve_a == curve_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_a_training_interrupted_after_a_checkpoint_resumes_to_the_uninterrupted_result(tmp_path):
    uninterrupted = train()
    with pytest.raises(Preempted):
        train(DiesAfter(tmp_path / "node.pt", every_steps=7, every_seconds=0))
    resumed_from = TrainingCheckpoint(tmp_path / "node.pt", every_steps=7, every_seconds=0)
    resumed = train(resumed_from)
    assert resumed_from.resumed_step == 14  # the second checkpoint, not step 0
    assert_same(uninterrupted, resumed)


def test_an_unreadable_checkpoint_starts_over_and_one_that_runs_code_is_refused(tmp_path):
    uninterrupted = train()
    truncated = tmp_path / "truncated.pt"
    with pytest.raises(Preempted):
        train(DiesAfter(truncated, every_steps=7, every_seconds=0))
    truncated.write_bytes(truncated.read_bytes()[:100])

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"step": 7, "total_steps": 42, "model": Exploit()}))
    for path in (truncated, evil):
        checkpoint = TrainingCheckpoint(path, every_steps=7, every_seconds=0)
        with pytest.warns(UserWarning, match="unreadable"):
            assert_same(uninterrupted, train(checkpoint))
        assert checkpoint.resumed_step == 0
    assert not (tmp_path / "pwned").exists()


def test_a_full_disk_skips_the_checkpoint_and_training_goes_on(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    uninterrupted = train()
    path = tmp_path / "node.pt"
    path.with_name("node.pt.partial").symlink_to("/dev/full")  # every write there fails with ENOSPC
    checkpoint = TrainingCheckpoint(path, every_steps=7, every_seconds=0)
    with pytest.warns(UserWarning, match=os.strerror(errno.ENOSPC)):
        assert_same(uninterrupted, train(checkpoint))
    assert (
        checkpoint.saves == 4
    )  # of five due: the first met the full disk (its partial file is gone, so later ones had room)
