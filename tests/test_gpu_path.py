"""What a CUDA machine would do with a sweep, checked on a machine without a GPU: each test names the failure a GPU
would have shown. `tests/fake_cuda.py` simulates the CUDA device (fake tensors: devices and shapes without data, a
device mismatch raises as on a GPU, a value read back to the host is counted); the `meta` device, a real device
without data on every machine, stands in for "not the CPU" where real generator states are compared; the GPU's
hardware answers (its name, capability, memory) are monkeypatched where a function only reads them."""

import types

import pytest
import torch

from orchestrator.execute.search import trial_device
from orchestrator.execute.worker import InputRef, NodeWorker
from orchestrator.plan import build_dag
from orchestrator.spec import load_spec
from tests.conftest import tiny_quickstart
from tests.fake_cuda import CUDA, devices, fake_cuda
from workloads import runtime, speed, step_cost
from workloads.corruptions import draw_corruption
from workloads.data import base as data_base
from workloads.data.cifar import crop_flip
from workloads.evaluation import EvaluationConfig, scored_images
from workloads.forget import ForgetSet
from workloads.nodes import NODE_KINDS, DatasetRef, InputNode, RunContext, load_data
from workloads.nodes.common import node_model
from workloads.runtime import DeviceUnavailable, gpu_memory_share, runtime_facts, worker_device
from workloads.speed import SpeedConfig, effective_precision, fp32_math, set_fp32_math
from workloads.train import BatchStream, generator_for

GIB = 2**30


def tiny_nodes(tmp_path):
    dag = build_dag(load_spec(tiny_quickstart(tmp_path / "q.yaml")))
    return next(n for n in dag if n.kind == "distance"), next(n for n in dag if n.kind == "interpolate")


def test_distance_and_lmc_nodes_read_a_parent_this_worker_computed_on_its_gpu(tmp_path, monkeypatch):
    """Under Ray the actor that computed an unlearned model often runs the distance and LMC nodes that read it; in
    local mode a resumed sweep reads the original from the store and computes the unlearned model now. Either way
    one parent was computed on this worker's GPU and the other comes from the store, on the CPU."""
    distance, interpolate = tiny_nodes(tmp_path)
    data = load_data(distance.config.dataset)
    stored = node_model(distance.config, data, torch.device("cpu"), seed=1).state_dict()  # as the store gives it
    n = len(data.y_train)
    forget_set = ForgetSet(
        forget=torch.arange(20), retain=torch.arange(40, n), pool=torch.arange(10), heldout=torch.arange(10, 20)
    )
    worker = NodeWorker(None, CUDA)  # its tracker is not asked: the stored parent is handed over directly
    with fake_cuda(monkeypatch):
        unlearned = node_model(distance.config, data.to(CUDA), CUDA, seed=2)  # computed here, on the GPU
        worker.keep("unlearned", unlearned.state_dict())
        kept = worker._input(InputRef("unlearned", "run", {}))
        assert devices(kept.state) == {"cpu"}  # as a parent read from the store comes, holding no GPU memory
        inputs = {"a": InputNode({}, lambda: stored), "b": kept}
        ctx = RunContext(CUDA, data.to(CUDA), forget_set)
        for node in (distance, interpolate):  # raised FakeTensorDeviceMismatchError: cuda:0 and cpu
            out = NODE_KINDS.get(node.kind).run(node.config, inputs, ctx)
            assert out.metrics


def test_a_node_draws_the_same_batches_and_augmentations_on_any_device():
    """A CUDA generator draws other numbers than a CPU generator from the same seed: a GPU run of a node would be
    another sample under the same content key, and a training checkpoint could not resume on the other kind of
    device. Every node draws from a CPU generator; on a device other than the CPU (meta: no data, a real device) the
    generator goes through the very states it goes through on the CPU."""
    x, y = torch.rand(50, 3, 8, 8), torch.arange(50) % 10
    streams = {}
    for device in ("cpu", "meta"):
        stream = BatchStream(x.to(device), y.to(device), 8, generator_for(5), crop_flip(padding=2))
        states = []
        for _ in range(9):  # past a pass: a second permutation is drawn
            xb, _ = next(stream)
            assert xb.device.type == device
            states.append(stream.generator.get_state())
        states.append(scored_images(x.to(device), EvaluationConfig(augment=True), crop_flip(padding=2)).device.type)
        streams[device] = states
    assert all(torch.equal(a, b) for a, b in zip(streams["cpu"][:-1], streams["meta"][:-1]))
    assert runtime_facts(torch.device("cpu"))["generator"] == "cpu"


def test_a_worker_holds_its_dataset_once_in_the_layout_its_nodes_use():
    """Every node made its own channels-last copy of the resident dataset, so a task space's corruption (cached by
    the identity of the data it was applied to) was applied again for every node, each copy kept alive; and a worker
    on a GPU also kept the CPU copy it was loaded from."""
    digits = DatasetRef(name="digits", args={})
    layout = SpeedConfig(channels_last=True)
    first, second = load_data(digits, "cpu", layout), load_data(digits, "cpu", layout)
    assert first.x_train is second.x_train and first.x_train.is_contiguous(memory_format=torch.channels_last)
    corruption = draw_corruption(first.y_train, 10, {"name": "random_swap", "size": 20, "seed": 0, "args": {}})
    assert corruption.apply(first) is corruption.apply(second)

    args = {"num_samples": 600, "seed": 7919}  # a dataset no other test loads: its entries are this test's own
    on_meta = load_data(DatasetRef(name="mnist1d", args=args), "meta")
    assert on_meta.x_train.device.type == "meta"
    held = [key[2] for key in data_base._CACHE if key[0] == "mnist1d" and "seed=7919" in key[1]]
    assert held == ["meta"]  # no CPU copy beside the device's


def test_a_fractional_worker_may_allocate_its_share_of_the_gpu_and_no_more(monkeypatch):
    """Four quarter-GPU actors on a 24 GB A10G: without a cap the first to grow starves the others; each CUDA context
    also takes about half a GiB outside the caching allocator, so the cap leaves room for it."""
    assert gpu_memory_share(1.0, 24 * GIB) is None and gpu_memory_share(2.0, 24 * GIB) is None
    quarter = gpu_memory_share(0.25, 24 * GIB)
    assert 0.22 < quarter < 0.25 and 4 * (quarter * 24 * GIB + runtime.CONTEXT_BYTES) <= 24 * GIB
    capped = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: types.SimpleNamespace(total_memory=24 * GIB))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d: capped.append((f, d)))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    NodeWorker(None, CUDA, gpu_share=0.25)
    assert capped == [(quarter, CUDA)]
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic


@pytest.fixture
def fp32_flags():
    before = fp32_math()
    yield
    set_fp32_math("tf32" if before["conv"] == "tf32" else "fp32")


def test_fp32_is_ieee_on_a_gpu_and_tf32_is_asked_for(fp32_flags):
    """PyTorch lets cuDNN convolutions run in TF32 by default: an "fp32" ResNet on an A100 or H100 was TF32."""
    set_fp32_math("fp32")
    assert fp32_math() == {"matmul": "ieee", "conv": "ieee"}
    set_fp32_math("tf32")
    assert fp32_math() == {"matmul": "tf32", "conv": "tf32"}


@pytest.mark.parametrize("capability, bf16, tf32", [((7, 5), "fp32", "fp32"), ((8, 0), "bf16", "tf32")])
def test_the_precision_recorded_is_what_the_gpu_computes(monkeypatch, capability, bf16, tf32):
    """A T4 (7.5) or V100 (7.0) emulates bf16 in fp32, and torch.cuda.is_bf16_supported() says yes to that."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert effective_precision(SpeedConfig(precision="bf16"), CUDA) == bf16
    assert effective_precision(SpeedConfig(precision="tf32"), CUDA) == tf32
    assert effective_precision(SpeedConfig(precision="tf32"), torch.device("cpu")) == "fp32"


def test_every_node_records_what_makes_its_gpu_numbers_reproducible(monkeypatch, fp32_flags):
    properties = types.SimpleNamespace(total_memory=80 * GIB)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d=None: properties)
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda d=None: 0.24)
    set_fp32_math("fp32")
    facts = runtime_facts(CUDA)
    assert facts["device"] == "NVIDIA H100 80GB HBM3" and facts["capability"] == "9.0"
    assert facts["cuda"] == torch.version.cuda and facts["cudnn"] == torch.backends.cudnn.version()
    assert facts["fp32_matmul"] == facts["fp32_conv"] == "ieee" and facts["generator"] == "cpu"
    assert {"cudnn_deterministic", "cudnn_benchmark"} <= set(facts) and facts["memory_fraction"] == 0.24


def test_a_worker_given_a_gpu_it_cannot_use_says_so_instead_of_running_on_the_cpu(monkeypatch):
    """A Ray actor given a GPU whose CUDA does not start (a torch wheel built for a newer driver) fell back to the
    CPU without a word. Here, on a machine with no GPU at all, a GPU that is only Ray's logical resource still means
    the CPU (the tests' clusters), unless the sweep asked for `cuda`."""
    assert worker_device("auto", holds_gpu=False) == worker_device("cuda", holds_gpu=False) == torch.device("cpu")
    assert worker_device("auto", holds_gpu=True) == torch.device("cpu")  # a logical GPU on a CPU-only machine
    with pytest.raises(DeviceUnavailable, match="holds a GPU but torch .* cannot use it"):
        worker_device("cuda", holds_gpu=True)
    monkeypatch.setattr(runtime, "nvidia_gpus_present", lambda: True)  # a GPU machine whose CUDA does not start
    with pytest.raises(DeviceUnavailable, match="cannot use it"):
        worker_device("auto", holds_gpu=True)


def test_a_tune_trial_runs_on_the_gpu_ray_gave_it_not_the_sweeps_cuda_n():
    """Ray makes a trial's GPU its cuda:0; the sweep's `device: cuda:1` (for local runs) named a GPU it cannot see."""
    assert trial_device("cuda:1", num_gpus=0) == "cpu"
    with pytest.raises(DeviceUnavailable):  # no CUDA here: on a GPU machine this is "cuda:0"
        trial_device("cuda:1", num_gpus=0.25)


def test_a_sweep_for_gpu_workers_is_planned_and_checked_on_a_machine_without_one(tmp_path):
    """`device: cuda` was checked against the driver's GPUs, so a sweep for a Ray cluster's GPU workers was refused on
    the laptop or CPU head node that submits it."""
    assert load_spec(tiny_quickstart(tmp_path / "q.yaml", device="cuda")).device == "cuda"


def test_the_step_cost_waits_for_the_gpu_the_node_runs_on(monkeypatch):
    """torch.cuda.synchronize() waits for the current device, cuda:0, whatever GPU the measured step ran on."""
    waited = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    step_cost._timed(lambda: None, torch.device("cuda", 1))
    assert waited and set(waited) == {torch.device("cuda", 1)}


def test_speed_settings_name_every_precision():
    assert speed.PRECISIONS == ("fp32", "tf32", "bf16", "bf16_everywhere", "fp16")


def test_a_training_checkpoint_from_the_other_kind_of_device_starts_over_instead_of_failing_every_retry(tmp_path):
    """A checkpoint written on a GPU held a CUDA generator's state (16 bytes: seed and offset), which does not load
    into a CPU generator (5,056 bytes), nor the reverse; the load raised outside the checkpoint's error handling, so
    the node failed on every retry. Now it is discarded with a warning and training starts over, to the result of an
    uninterrupted run."""
    from tests.test_recipe import tiny_fit

    whole, _ = tiny_fit(tmp_path / "a")
    assert tiny_fit(tmp_path / "b", interrupt_at=33) == (None, None)
    path = tmp_path / "b" / "ckpt.pt"
    saved = torch.load(path, weights_only=True)
    saved["stream"]["generator"] = torch.zeros(16, dtype=torch.uint8)  # what a CUDA generator's get_state() gives
    torch.save(saved, path)
    with pytest.warns(UserWarning, match="not resumed: its batch generator's state \\(16 bytes\\)"):
        resumed, _ = tiny_fit(tmp_path / "b")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
