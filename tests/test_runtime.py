"""Every torch process starts with denormals flushed in all its threads and exactly its share of the cores: the
flag reaches the pool's threads, a model whose weights decay into the denormal range does not slow down (a ratio of
step times inside one test), and flushing changes results only within float noise."""

import subprocess
import sys
import time

import pytest
import torch

from orchestrator.cli import main
from tests.conftest import REPO
from workloads.config import typed
from workloads.models import MODELS, build_model
from workloads.runtime import flushes_in_every_thread

QUICKSTART_CNN = {"channels": [32, 64, 64], "hidden": 256}


def python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.e2e
def test_the_check_sees_every_thread_of_the_pool():
    # Without the flag, the pool's threads leave their chunk of a denormal product denormal; with it, none does.
    assert (
        python(
            "import torch; torch.set_num_threads(2); "
            "from workloads.runtime import flushes_in_every_thread as f; print(f())"
        )
        == "False"
    )
    assert python("from workloads.runtime import configure_torch; print(configure_torch(2))").startswith(
        "{'torch_threads': 2, 'flush_denormal': True"
    )


def quickstart_cnn() -> torch.nn.Module:
    return build_model("cnn1d", typed(MODELS.get("cnn1d").config, QUICKSTART_CNN, "model.args"), (1, 40), 10, 0)


def forward_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 20) -> float:
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return (time.perf_counter() - start) / repeats * 1e3


def test_weights_decaying_into_the_denormal_range_neither_stay_denormal_nor_slow_the_forward_pass():
    """SGD with strong weight decay on inputs that carry no gradient to the weights halves them every step, which
    walks every weight through the denormal range in about 130 steps, as dead weights do over a long training."""
    assert flushes_in_every_thread()  # conftest configured this process as the CLI does
    model = quickstart_cnn().eval()
    x = torch.randn(256, 1, 40)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, weight_decay=0.5)
    early = forward_ms(model, x)
    for _ in range(140):
        loss = model(torch.zeros(8, 1, 40)).sum() * 0.0  # only the decay moves the weights
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    denormal = ((weights != 0) & (weights.abs() < torch.finfo(torch.float32).tiny)).sum().item()
    assert denormal == 0  # without the flag, every weight would now be denormal
    late = forward_ms(model, x)
    assert late / early < 1.5  # Intel CPUs without the flag: several times slower here


TRAIN = """
import sys, torch
torch.set_flush_denormal(sys.argv[1] == "on"); torch.set_num_threads(1)
from workloads.data import load_dataset
from workloads.data.mnist1d import MNIST1DConfig
from workloads.models import MODELS, build_model
from workloads.config import typed
from workloads.train import TrainConfig, evaluate, train_classifier
d = load_dataset("mnist1d", MNIST1DConfig(num_samples=1000), "cpu")
args = typed(MODELS.get("cnn1d").config, {"channels": [8, 16], "hidden": 32}, "a")
model = build_model("cnn1d", args, d.input_shape, 10, 0)
curve = train_classifier(model, d.x_train, d.y_train, TrainConfig(epochs=8, weight_decay=1e-3), seed=0)
print(repr(evaluate(model, d.x_test, d.y_test, 10)["acc"]), repr(curve[-1][1]),
      " ".join(repr(v) for v in torch.cat([p.detach().flatten() for p in model.parameters()])[:50].tolist()))
"""


@pytest.mark.e2e
def test_flushing_changes_training_only_within_float_noise():
    runs = {}
    for flag in ("on", "off"):
        out = subprocess.run([sys.executable, "-c", TRAIN, flag], capture_output=True, text=True, cwd=REPO, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        acc, loss, *weights = map(float, out.stdout.split())
        runs[flag] = (acc, loss, torch.tensor(weights))
    assert runs["on"][0] == pytest.approx(runs["off"][0], abs=0.01)  # at most a test example or two
    assert runs["on"][1] == pytest.approx(runs["off"][1], rel=1e-4)
    assert torch.allclose(runs["on"][2], runs["off"][2], rtol=1e-3, atol=1e-5)


def test_a_thread_count_below_one_is_bad_input(capsys):
    assert main(["plan", str(REPO / "configs/sweeps/quickstart.yaml"), "--threads", "0"]) == 2
    assert "argument --threads: must be at least 1, got 0" in capsys.readouterr().err
