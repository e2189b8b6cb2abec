"""The plan's compute estimate: what each node to run does (its kind's `Work`, from its config: training steps,
examples scored) times what a step and a forward example of its model cost on this machine, and what the estimate
rests on, which `plan` shows.

- **Measured here.** A step's cost is timed once per machine, model, speed settings, input shape and batch size
  (workloads/step_cost.py: warm-up, then the best of several timed blocks, with the load and the cores noted) and
  cached in `step_costs.json` beside the label cache. A cached figure is measured again when it is older than
  MAX_AGE, was written by an older form of this measurement, was taken on a busy machine that is quieter now, or
  disagrees with the recorded times of finished nodes by more than DISAGREE times either way.
- **Calibrated by finished nodes.** The plan's cached nodes that ran on this device with these torch threads carry
  their recorded `node_seconds`. The median time of those that compute nothing (distance nodes: load, measure,
  record) is the overhead every node pays; per model and batch size, the median ratio of a node's time less that
  overhead to its measured compute scales the nodes to run.

An estimate, not a promise: a method's own extra passes (SSD's Fisher, SCRUB's teacher) beyond its streams are not
counted, and nodes sharing a machine slow each other."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

import torch

from orchestrator.local_cache import cache_dir
from orchestrator.plan.dag import Node
from orchestrator.plan.identity import canonical_json, sha256_hex
from orchestrator.plan.labels import Labels
from workloads.nodes import NODE_KINDS, DataNodeConfig, DataSize, Work
from workloads.runtime import available_cores, cpu_model
from workloads.step_cost import measure_step_cost

FORMAT = 2  # of a cached entry: best-of-blocks with the load noted
MAX_AGE = 30 * 86400.0  # seconds before a cached step cost is measured again
BUSY_RECHECK = 600.0  # a figure taken on a busy machine is measured again after this long, when it is quieter
DISAGREE = 4.0  # a cached figure this far from the finished nodes' times is measured again


@dataclass
class KindEstimate:
    nodes: int = 0
    train_steps: int = 0
    seconds: float = 0.0
    calibrated: int = 0  # nodes whose cost the recorded times of finished nodes calibrate


@dataclass
class StepBasis:
    """One measured step cost and what it rests on, as `plan` shows it."""

    model: str
    batch: int
    step_seconds: float  # measured: the best timed block
    spread: float  # the median block over the best: how much the machine's load moved the measurement
    measured_at: float
    load: float  # 1-minute load average when it was measured
    cores: int
    factor: Optional[float] = None  # from the recorded times of finished nodes
    nodes: int = 0  # how many

    @property
    def used_seconds(self) -> float:
        return self.step_seconds * (self.factor if self.factor is not None else 1.0)


@dataclass
class Estimate:
    machine: str
    kinds: dict[str, KindEstimate] = field(default_factory=dict)
    steps: dict[str, StepBasis] = field(default_factory=dict)  # by step-cost key
    overhead: float = 0.0  # seconds every node pays, from finished nodes that compute nothing
    overhead_nodes: int = 0

    @property
    def seconds(self) -> float:
        return sum(k.seconds for k in self.kinds.values())


@dataclass(frozen=True)
class Observed:
    """A cached node of the plan and the time its run recorded (`node_seconds`), on this device and threads."""

    node: Node
    seconds: float


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{cpu_model()} ({torch.get_num_threads()} threads), torch {torch.__version__}"


def estimate(
    nodes: Iterable[Node], labels: Labels, device: torch.device, observed: Iterable[Observed] = ()
) -> Estimate:
    out = Estimate(machine_name(device))
    size = DataSize(len(labels.y_train), labels.test_size)
    costs = StepCosts(out.machine, labels, device)
    out.overhead, out.overhead_nodes, factors = calibrate(list(observed), costs, size)
    for node in nodes:
        work = NODE_KINDS.get(node.kind).work(node.config, size)
        kind = out.kinds.setdefault(node.kind, KindEstimate())
        kind.nodes += 1
        kind.train_steps += work.train_steps
        kind.seconds += out.overhead
        if work.train_steps or work.forward_examples:
            key = costs.key(node.config, work.batch_size)
            factor, n = factors.get(key, (None, 0))
            kind.seconds += costs.compute(node.config, work) * (factor if factor is not None else 1.0)
            kind.calibrated += factor is not None
            out.steps[key] = costs.basis(key, factor, n)
    return out


def calibrate(
    observed: list[Observed], costs: StepCosts, size: DataSize
) -> tuple[float, int, dict[str, tuple[float, int]]]:
    """(overhead per node, how many nodes gave it, {step-cost key: (factor, how many nodes gave it)})."""
    timed = [(o.seconds, NODE_KINDS.get(o.node.kind).work(o.node.config, size), o.node.config) for o in observed]
    idle = [seconds for seconds, work, _ in timed if not work.train_steps and not work.forward_examples]
    overhead = statistics.median(idle) if idle else 0.0
    trained = [(seconds, work, config) for seconds, work, config in timed if work.train_steps]

    def factors() -> dict[str, tuple[float, int]]:
        ratios: dict[str, list[float]] = {}
        for seconds, work, config in trained:
            compute = costs.compute(config, work)
            if compute > 0:
                ratios.setdefault(costs.key(config, work.batch_size), []).append(max(seconds - overhead, 0.0) / compute)
        return {key: (statistics.median(r), len(r)) for key, r in ratios.items()}

    found = factors()
    implausible = [key for key, (factor, _) in found.items() if not 1 / DISAGREE <= factor <= DISAGREE]
    again = [costs.measure_again(key) for key in implausible]  # every one, not only up to the first
    if any(again):
        found = factors()  # measured again where the records disagreed; what still disagrees, the records correct
    return overhead, len(idle), found


class StepCosts:
    """Measured costs by (machine, model, speed settings, input shape, batch size), in a JSON file per user."""

    def __init__(self, machine: str, labels: Labels, device: torch.device):
        self.machine, self.labels, self.device = machine, labels, device
        self.path = cache_dir() / "step_costs.json"
        try:
            self.saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.saved = {}
        self.what: dict[str, dict] = {}
        self.configs: dict[str, tuple[DataNodeConfig, int]] = {}
        self.fresh: set[str] = set()  # measured by this plan

    def key(self, config: DataNodeConfig, batch_size: int) -> str:
        what = {
            "machine": self.machine,
            "model": config.model.as_dict(),
            "speed": vars(config.speed),
            "input": list(self.labels.input_shape),
            "classes": self.labels.num_classes,
            "batch": batch_size,
        }
        key = sha256_hex(canonical_json(what))
        self.what[key], self.configs[key] = what, (config, batch_size)
        if key not in self.fresh and stale(self.saved.get(key)):
            self._measure(key)
        return key

    def compute(self, config: DataNodeConfig, work: Work) -> float:
        entry = self.saved[self.key(config, work.batch_size)]
        return work.train_steps * entry["train_step_seconds"] + work.forward_examples * entry["forward_example_seconds"]

    def measure_again(self, key: str) -> bool:
        """Measures the key's cost again unless this plan just did; whether it did."""
        if key in self.fresh:
            return False
        self._measure(key)
        return True

    def basis(self, key: str, factor: Optional[float], nodes: int) -> StepBasis:
        entry, what = self.saved[key], self.what[key]
        model = what["model"]
        args = " ".join(f"{k}={v}" for k, v in sorted((model.get("args") or {}).items()))
        return StepBasis(
            f"{model['name']} {args}".strip(),
            what["batch"],
            entry["train_step_seconds"],
            entry["spread"],
            entry["measured_at"],
            entry["load"],
            entry["cores"],
            factor,
            nodes,
        )

    def _measure(self, key: str) -> None:
        (config, batch_size), load = self.configs[key], os.getloadavg()[0]
        cost = measure_step_cost(
            config.model.name,
            config.model.args,
            config.speed,
            self.labels.input_shape,
            self.labels.num_classes,
            batch_size,
            self.device,
        )
        noted = {"format": FORMAT, "measured_at": time.time(), "load": round(load, 2), "cores": available_cores()}
        self.saved[key] = {**self.what[key], **vars(cost), **noted}
        self.fresh.add(key)
        self._save()

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.saved, indent=1))
        except OSError:
            pass  # an unwritable cache only costs the next plan a measurement


def stale(entry: Optional[dict], now: Optional[float] = None) -> bool:
    """Whether a cached step cost must be measured again: none, an older form, too old, or taken on a busy machine
    (load above its cores) a while ago when this one is quieter now."""
    if entry is None or entry.get("format") != FORMAT:
        return True
    age = (now or time.time()) - entry["measured_at"]
    if age > MAX_AGE:
        return True
    busy = entry["load"] > entry["cores"]
    return busy and age > BUSY_RECHECK and os.getloadavg()[0] < entry["load"] - 1
