"""The CIFAR ResNets: the reference architecture's sizes, hidden states per residual block, seeded init, training."""

import pytest
import torch
import torch.nn.functional as F

from workloads.models import MODELS, build_model
from workloads.models.resnet import ResNetConfig

NARROW = ResNetConfig(width=8)


def narrow(name: str = "resnet18", num_classes: int = 10, seed: int = 0):
    return build_model(name, NARROW, (3, 32, 32), num_classes, seed)


def test_full_width_matches_the_reference_parameter_counts():
    counts = {
        name: sum(p.numel() for p in build_model(name, ResNetConfig(), (3, 32, 32), 10, 0).parameters())
        for name in ("resnet18", "resnet34")
    }
    assert counts == {"resnet18": 11_173_962, "resnet34": 21_282_122}
    assert MODELS.get("resnet18").config is ResNetConfig


@pytest.mark.parametrize("name, per_stage", [("resnet18", [2, 2, 2, 2]), ("resnet34", [3, 4, 6, 3])])
def test_one_hidden_state_per_residual_block_after_the_stem(name, per_stage):
    model = narrow(name, num_classes=100).eval()
    logits, hidden = model(torch.rand(2, 3, 32, 32), return_hidden=True)
    assert logits.shape == (2, 100) and len(hidden) == 1 + sum(per_stage)
    expected = [(2, 8, 32, 32)]  # the stem: stride 1, no max-pool
    for stage, count in enumerate(per_stage):
        side = 32 // 2**stage
        expected += [(2, 8 * 2**stage, side, side)] * count
    assert [tuple(h.shape) for h in hidden] == expected
    assert torch.equal(model(torch.zeros(2, 3, 32, 32)), model(torch.zeros(2, 3, 32, 32), return_hidden=True)[0])


def test_channels_last_input_gives_the_same_logits():
    model = narrow().eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.to(memory_format=torch.channels_last)), atol=1e-5)
        channels_last_model = narrow().to(memory_format=torch.channels_last).eval()
        assert torch.allclose(model(x), channels_last_model(x.to(memory_format=torch.channels_last)), atol=1e-5)


def test_same_seed_same_initial_weights():
    a, b, c = narrow(seed=3).state_dict(), narrow(seed=3).state_dict(), narrow(seed=4).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_rejects_inputs_that_are_not_images():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        build_model("resnet18", NARROW, (1, 40), 10, 0)


def test_a_narrow_resnet18_trains_on_cpu():
    model = narrow().train()
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(16, 3, 32, 32, generator=generator), torch.randint(0, 10, (16,), generator=generator)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(2):
        optimiser.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(not torch.equal(p0, p) for p0, p in zip(before, model.parameters()))
    assert model.stem[1].num_batches_tracked == 2  # batch-norm statistics are updated in train mode
