"""Feldman & Zhang memorization estimates from models trained on random subsets.

mem_i = mean correctness on i over models that trained on i - mean correctness over models that did not.

The M subset models train together as one vmapped ensemble (torch.func: stack_module_state + vmap over
functional_call) when the architecture allows, and one after another otherwise: a model whose training mutates
buffers (batch-norm running statistics) or draws dropout masks cannot be vmapped into the same computation, so it
falls back to the sequential path and the result says why (`mode`, `message`). Both paths run the same algorithm, so
the same seeds give the same models up to float rounding (which long training amplifies, as it does between 1 and 2
CPU threads: at the quickstart's 40 epochs 99.2% of the correctness entries agree, vmap against sequential, and 99.3%
for sequential on 1 thread against 2):

- model m is `new_model(seed * 1000 + m)` and trains on subset m of `subset_masks` (seeded);
- its batches come from `SubsetStream`: successive seeded permutations of its own subset, read batch_size at a time
  and wrapping across pass boundaries, so every step gives every model exactly batch_size examples (vmap needs equal
  shapes, and subsets differ in size); the stream's generator (seed * 1000 + m) also drives the augmentation;
- every model takes the same number of steps, `steps_for(epochs, round(mean subset size), batch_size)`, as
  train_classifier counts them for a set of the mean subset size (over all num_models masks): about `epochs` passes
  over a model's own subset;
- Adam with weight decay and cosine decay (`train.adam_with_cosine`). In the ensemble one Adam runs over the stacked
  (M, ...) parameters with the sum of the per-model mean losses: Adam, its weight decay and the schedule act
  element-wise, and model m's slice of the gradient of the sum is model m's own gradient, so this is per-model Adam.
- correctness of every model on every training example, in eval mode, vmapped in chunks of examples (one model at a
  time on the sequential path).

Shards: `models` (a range of model indices) trains only those models. Model m is the same model in any range (its
seed, its row of the masks drawn for all num_models, the step count from all of them), so the orchestrator can spread
the estimate over `shards` nodes, each a contiguous block (`shard_models`), and concatenate their included/correct
rows: bitwise the unsharded result on the sequential path, and up to float rounding on the vmap path (an ensemble's
batched kernels depend on how many models it stacks).

Speed (benchmarks/memorization_ensemble.py, BENCHMARKS.md: 32 models on MNIST-1D, the same steps, on a 2-core CPU):
the ensemble trains 2.8x faster than the sequential loop for a small 1D CNN (11k parameters) and 3.7-3.9x for a
2.9k-parameter one or an MLP at batch 128, 5.8-8.2x at batch 32; for the quickstart's 1D CNN (185k parameters) at
batch 128 it is no faster (0.7-1.0x): one such model's step is already compute-bound on the CPU, and the batched
(grouped) convolutions are slower per FLOP than the per-model ones (1.2x with glibc's allocator told to keep freed
memory, MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_, which spares the larger ensemble activations their page
faults). The first vmap in a process costs about 1 s.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from workloads.train import TrainConfig, adam_with_cosine, fit, generator_for, steps_for


@dataclass
class MemorizationConfig:
    scores_file: Optional[str] = None  # C-scores (npz: labels, scores); memorization = 1 - score. Else: estimate.
    num_models: int = 16
    subset_fraction: float = 0.7
    seed: int = 0
    vectorize: bool = True  # train the models as one vmapped ensemble where the architecture allows
    # The orchestrator spreads the models over this many nodes (contiguous blocks); a scores_file never shards.
    shards: int = 1
    train: TrainConfig = field(default_factory=TrainConfig)


def memorization_from(included: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """(models, examples) boolean masks -> per-example score; 0 where an example was never (or always) included."""
    included, correct = included.float(), correct.float()
    n_in, n_out = included.sum(0), (1 - included).sum(0)
    acc_in = (correct * included).sum(0) / n_in.clamp(min=1)
    acc_out = (correct * (1 - included)).sum(0) / n_out.clamp(min=1)
    return torch.where((n_in > 0) & (n_out > 0), acc_in - acc_out, torch.zeros_like(acc_in))


def shard_models(num_models: int, count: int, index: int) -> range:
    """The models of shard `index` of `count`: a contiguous block, the blocks differing in size by at most one."""
    return range(index * num_models // count, (index + 1) * num_models // count)


def subset_masks(num_models: int, num_examples: int, fraction: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(num_models, num_examples, generator=generator) < fraction


class SubsetStream:
    """Endless batches of exactly batch_size examples of `subset` (indices into x): successive seeded permutations
    of the subset, wrapping across pass boundaries. Quacks like train.BatchStream, so `fit` can drive it."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        subset: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
        augment=None,
    ):
        if len(subset) == 0:
            raise ValueError("cannot draw batches from an empty subset")
        self.x, self.y, self.subset, self.batch_size, self.generator, self.augment = (
            x,
            y,
            subset,
            batch_size,
            generator,
            augment,
        )
        self.batches_per_pass = math.ceil(len(subset) / batch_size)  # only for fit's loss curve
        self._queue = subset[:0]

    def __iter__(self):
        return self

    def next_index(self) -> torch.Tensor:
        while len(self._queue) < self.batch_size:
            order = torch.randperm(len(self.subset), generator=self.generator, device=self.generator.device)
            self._queue = torch.cat([self._queue, self.subset[order.to(self.subset.device, non_blocking=True)]])
        index, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size :]
        return index

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.next_index()
        x = self.x[index]
        return (self.augment(x, self.generator) if self.augment else x), self.y[index]


def why_not_vectorized(model: nn.Module, x: torch.Tensor) -> Optional[str]:
    """None if training the model is a pure function of its parameters; else why the ensemble must run sequentially."""
    norms = [
        n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
    ]
    if norms:
        return (
            f"the model has batch-norm running statistics ({len(norms)} layers, e.g. {norms[0] or 'the model itself'})"
        )
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        return "the model has dropout, whose masks a vmapped ensemble would draw differently"
    if getattr(model, "_compiled_call_impl", None) is not None:
        return "the model is torch.compiled"
    if any(True for _ in model.buffers()):  # any other buffer: run one training forward and see whether it moves
        probe = copy.deepcopy(model).train()
        before = {k: b.clone() for k, b in probe.named_buffers()}
        with torch.no_grad():
            probe(x[:2])
        moved = [k for k, b in probe.named_buffers() if not torch.equal(b, before[k])]
        if moved:
            return f"training mutates the model's buffers ({', '.join(moved[:3])})"
    return None


@dataclass
class Ensemble:
    """M trained models of one architecture: `base` gives the architecture, params/buffers are stacked (M, ...)."""

    base: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    mode: str  # "vmap" or "sequential"
    message: str

    @torch.no_grad()
    def logits(self, x: torch.Tensor, chunk: Optional[int] = None) -> torch.Tensor:
        """(M, N, classes) logits of every model on every row of x, in eval mode, in chunks of rows (vmapped: M * chunk
        examples at a time, by default about 2048; sequential: chunk, by default 2048, as train.predict)."""
        chunk = chunk or (max(16, 2048 // len(self)) if self.mode == "vmap" else 2048)
        was_training = self.base.training
        self.base.eval()
        call = lambda p, b, xc: functional_call(self.base, (p, b), (xc,))
        if self.mode == "vmap":
            run = lambda xc: vmap(call, in_dims=(0, 0, None))(self.params, self.buffers, xc)
        else:  # one model at a time: batch-norm and friends in eval mode, as train.predict runs them
            slice_m = lambda d, m: {k: v[m] for k, v in d.items()}
            run = lambda xc: torch.stack(
                [call(slice_m(self.params, m), slice_m(self.buffers, m), xc) for m in range(len(self))]
            )
        out = torch.cat([run(x[i : i + chunk]) for i in range(0, len(x), chunk)], 1)
        self.base.train(was_training)
        return out

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]


def train_subset_models(
    new_model: Callable[[int], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    included: torch.Tensor,
    cfg: MemorizationConfig,
    augment=None,
    models: Optional[range] = None,
) -> Ensemble:
    """Model m = new_model(cfg.seed * 1000 + m) trained on x[included[m]], for m in `models` (default: every row of
    `included`, which holds all the masks: the step count comes from all of them); vmapped if cfg.vectorize and
    possible."""
    models = range(len(included)) if models is None else models
    seeds = [cfg.seed * 1000 + m for m in models]
    nets = [new_model(s).to(x.device) for s in seeds]
    subsets = [included[m].nonzero().flatten() for m in models]
    t = cfg.train
    total = steps_for(t.epochs, round(included.sum().item() / len(included)), t.batch_size)
    streams = [
        SubsetStream(x, y, s, t.batch_size, generator_for(seed), augment if t.augment else None)
        for s, seed in zip(subsets, seeds)
    ]
    reason = why_not_vectorized(nets[0], x) if cfg.vectorize else "vectorize is off"
    if reason is not None:
        return train_one_by_one(nets, streams, t, total, f"sequential: {reason}")
    return train_vmapped(nets, streams, x, y, t, total)


def train_one_by_one(nets: list[nn.Module], streams: list, t: TrainConfig, total: int, why: str) -> Ensemble:
    """Each model trained on its own stream, one after another; stacked into an Ensemble at the end."""
    for net, stream in zip(nets, streams):
        fit(net, stream, *adam_with_cosine(net, t.lr, t.weight_decay, total, t.final_lr_fraction), total)
    params, buffers = stack_module_state(nets)
    return Ensemble(nets[0], {k: v.detach() for k, v in params.items()}, buffers, "sequential", why)


def train_vmapped(
    nets: list[nn.Module], streams: list, x: torch.Tensor, y: torch.Tensor, t: TrainConfig, total: int
) -> Ensemble:
    """The models as one vmapped ensemble: one Adam over the stacked (M, ...) parameters and the sum of the models'
    mean losses, which is each model's own Adam step (module docstring)."""
    params, buffers = stack_module_state(nets)  # leaf tensors (M, ...) that require grad
    holder = nn.ParameterList(params.values())  # the same storage, as Parameters, for adam_with_cosine
    params = dict(zip(params, holder))
    optimizer, schedule = adam_with_cosine(holder, t.lr, t.weight_decay, total, t.final_lr_fraction)
    base = nets[0].train()
    forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))
    for _ in range(total):
        index = torch.stack([stream.next_index() for stream in streams])  # (M, B): one gather for every model
        xb, yb = x[index], y[index]
        if streams[0].augment is not None:  # each model's own generator, drawn in the same order as its own stream
            xb = torch.stack([s.augment(xm, s.generator) for xm, s in zip(xb, streams)])
        logits = forward(params, buffers, xb)  # (M, B, classes)
        loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(yb.shape).mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    params = {k: v.detach() for k, v in params.items()}
    return Ensemble(base, params, buffers, "vmap", f"vmap: {len(nets)} models trained as one ensemble")


def estimate_memorization(
    new_model: Callable[[int], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: MemorizationConfig,
    augment=None,
    models: Optional[range] = None,
) -> dict:
    """Trains the models in `models` (default: all cfg.num_models), model m on subset m; returns scores, the masks and
    correctness behind them (rows: those models), and which path ran (`mode`: "vmap" or "sequential") with a `message`
    saying why."""
    masks = subset_masks(cfg.num_models, len(y), cfg.subset_fraction, cfg.seed).to(x.device)
    models = range(cfg.num_models) if models is None else models
    ensemble = train_subset_models(new_model, x, y, masks, cfg, augment, models)
    included, correct = masks[list(models)], ensemble.logits(x).argmax(2) == y
    return {
        "scores": memorization_from(included, correct),
        "included": included,
        "correct": correct,
        "mode": ensemble.mode,
        "message": ensemble.message,
    }


def memorization_from_cscores(path: str | Path, train_labels: torch.Tensor) -> torch.Tensor:
    """C-scores (Jiang et al.) for the training set, in its order, as memorization = 1 - score."""
    with np.load(path) as data:
        missing = {"labels", "scores"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: C-score file lacks {sorted(missing)} (needs arrays 'labels' and 'scores')")
        labels, scores = torch.as_tensor(data["labels"]).long(), torch.as_tensor(data["scores"]).float()
    if len(labels) != len(train_labels) or not torch.equal(labels, train_labels.cpu().long()):
        raise ValueError(
            f"{path}: its labels do not match the training set's ({len(labels)} vs {len(train_labels)} examples)"
        )
    return 1.0 - scores
