"""The plan's compute estimate: what each node to run does (its kind's `Work`, from its config: training steps,
examples scored) times what a step and a forward example of its model cost on this machine's device, measured once
per model, batch size and machine and cached beside the label cache. An estimate, not a promise: it ignores
checkpoint loading and recording, and a method's own extra passes (SSD's Fisher, SCRUB's teacher) beyond its streams."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from orchestrator.local_cache import cache_dir
from orchestrator.plan.dag import Node
from orchestrator.plan.identity import canonical_json, sha256_hex
from orchestrator.plan.labels import Labels
from workloads.nodes import NODE_KINDS, DataNodeConfig, DataSize
from workloads.runtime import cpu_model
from workloads.step_cost import StepCost, measure_step_cost


@dataclass
class KindEstimate:
    nodes: int = 0
    train_steps: int = 0
    seconds: float = 0.0


@dataclass
class Estimate:
    machine: str
    kinds: dict[str, KindEstimate] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(k.seconds for k in self.kinds.values())


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"{cpu_model()} ({torch.get_num_threads()} threads), torch {torch.__version__}"


def estimate(nodes: Iterable[Node], labels: Labels, device: torch.device) -> Estimate:
    out = Estimate(machine_name(device))
    size = DataSize(len(labels.y_train), labels.test_size)
    costs = StepCosts(out.machine, labels, device)
    for node in nodes:
        work = NODE_KINDS.get(node.kind).work(node.config, size)
        kind = out.kinds.setdefault(node.kind, KindEstimate())
        kind.nodes += 1
        kind.train_steps += work.train_steps
        if work.train_steps or work.forward_examples:
            cost = costs.get(node.config, work.batch_size)
            kind.seconds += (
                work.train_steps * cost.train_step_seconds + work.forward_examples * cost.forward_example_seconds
            )
    return out


class StepCosts:
    """Measured costs by (machine, model, speed settings, input shape, batch size), in a JSON file per user."""

    def __init__(self, machine: str, labels: Labels, device: torch.device):
        self.machine, self.labels, self.device = machine, labels, device
        self.path = cache_dir() / "step_costs.json"
        try:
            self.saved = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.saved = {}

    def get(self, config: DataNodeConfig, batch_size: int) -> StepCost:
        model, speed = config.model, config.speed
        what = {
            "machine": self.machine,
            "model": model.as_dict(),
            "speed": vars(speed),
            "input": list(self.labels.input_shape),
            "classes": self.labels.num_classes,
            "batch": batch_size,
        }
        key = sha256_hex(canonical_json(what))
        if key not in self.saved:
            cost = measure_step_cost(
                model.name,
                model.args,
                speed,
                self.labels.input_shape,
                self.labels.num_classes,
                batch_size,
                self.device,
            )
            self.saved[key] = {**what, **vars(cost)}
            self._save()
        entry = self.saved[key]
        return StepCost(entry["train_step_seconds"], entry["forward_example_seconds"])

    def _save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.saved, indent=1))
        except OSError:
            pass  # an unwritable cache only costs the next plan a measurement
