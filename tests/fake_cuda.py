"""A CUDA device on a machine without one, for the GPU bugs that need no GPU's numbers to show.

`torch._subclasses.fake_tensor.FakeTensorMode` makes tensors that carry a shape, a dtype and a device but no data, so
on a CPU-only machine they can live on `cuda:0`, and any operation that mixes a CUDA tensor with a CPU one raises as
it would on a GPU (`FakeTensorDeviceMismatchError`). What a fake tensor cannot do is hand a number to the host: here
such a read (`.item()`, `.tolist()`, `float(t)`) is answered with zero and a bincount with zeros, so a node's whole
forward computation runs (evaluation, distance, LMC, metrics): its numbers mean nothing, its devices are checked.
With `forbid_reads=True`, a read of a CUDA tensor raises `HostSync` instead: where a GPU would stop and wait.

Two limits: autograd's backward needs a real CUDA context, so a training step is checked up to its loss; and models
are built outside the fake mode (a module built inside it cannot be moved to a device), then moved in, as the nodes
do it (`workloads.nodes.common.new_model`)."""

from __future__ import annotations

import contextlib

import torch
from torch._subclasses.fake_tensor import FakeTensorMode, unset_fake_temporarily

aten = torch.ops.aten
CUDA = torch.device("cuda", 0)


class HostSync(AssertionError):
    """A CUDA tensor's value read on the host: on a GPU, the host waits here for every kernel queued before it."""


class FakeCuda(FakeTensorMode):
    def __init__(self, forbid_reads: bool = False):
        super().__init__(allow_non_fake_inputs=True)
        self.forbid_reads = forbid_reads

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default:
            if self.forbid_reads and args[0].device.type == "cuda":
                raise HostSync(f"a {tuple(args[0].shape)} CUDA tensor read on the host")
            return False if args[0].dtype == torch.bool else 0.0 if args[0].is_floating_point() else 0
        if func is aten.bincount.default:  # its length depends on the data: zeros of the length asked for
            weights = kwargs.get("weights", args[1] if len(args) > 1 else None)
            length = kwargs.get("minlength", args[2] if len(args) > 2 else 0)
            dtype = torch.double if weights is not None else torch.long
            return super().__torch_dispatch__(aten.new_zeros.default, types, (args[0], [length]), {"dtype": dtype})
        return super().__torch_dispatch__(func, types, args, kwargs)


@contextlib.contextmanager
def fake_cuda(monkeypatch, forbid_reads: bool = False):
    """Inside: `torch.device("cuda")` works without a GPU, and the nodes' models are built as on a real one."""
    import workloads.nodes.common as common

    build = common.build_model

    def build_outside(*args, **kwargs):
        with unset_fake_temporarily():
            return build(*args, **kwargs)

    monkeypatch.setattr(common, "build_model", build_outside)
    with FakeCuda(forbid_reads) as mode:
        yield mode


def devices(state: dict) -> set[str]:
    return {tensor.device.type for tensor in state.values()}
