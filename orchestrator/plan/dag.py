"""Sweep spec -> DAG of nodes. A node is a kind, a fully resolved config and named inputs; its content key is
computed once its inputs' keys and (if it reads the forget set) the forget-set indices are known (plan/sweep.py).

Per seed the DAG holds the original and the retrained control; per method setting and seed an unlearned model
(chained on another one for an initial safeguard). Every model is measured the same way (`ModelNodes`): evaluated,
attacked by relearning for each k, and, for all but the original, compared with the original in weight space.

A corrupted-data task space (`corruption:`) is the same DAG per cell: each corruption x discovery rate is a `Task`
whose nodes carry the corruption (every node that reads the training set) and the cell's forget section (the
discovered subset). The original's config holds the corruption but no discovery rate, so the builder's dedup makes
it one node per corruption and seed, shared by every rate and method; the retrained baseline is per cell.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

from orchestrator.plan.identity import canonical_json
from orchestrator.spec import MethodSetting, SweepSpec, as_dict, expand_method
from orchestrator.spec.corruption import corruption_sections
from workloads.corruptions import discovered_count
from workloads.data import DATASETS, attack_only_fields
from workloads.nodes import NODE_KINDS
from workloads.relearn_sets import usable_ks, uses_corrupted_test


@dataclass(eq=False)
class Node:
    kind: str
    config: dict
    inputs: dict[str, Node] = field(default_factory=dict)
    label: str = ""
    slot: str = ""  # the label without hyperparameters: earlier runs in the same slot explain why this one is new
    key: Optional[str] = None
    # The model this node makes or measures (method, hparams, seed, start): recorded on its run so runs compare by
    # method in the MLflow UI. Never part of the key: the config and inputs already determine the result.
    about: dict = field(default_factory=dict)

    def __post_init__(self):
        NODE_KINDS.get(self.kind).check_inputs(self.inputs)
        self.slot = self.slot or self.label

    @property
    def reads_forget_set(self) -> bool:
        return NODE_KINDS.get(self.kind).reads_forget_set(self.config)

    @property
    def input_keys(self) -> dict[str, str]:
        return {role: inp.key for role, inp in self.inputs.items()}

    @property
    def short(self) -> str:
        return (self.key or "?" * 12)[:12]


@dataclass
class ModelNodes:
    """A model and the nodes that measure it."""

    model: Node
    evaluate: Node
    relearn: dict[int, Node]  # k -> the attack with k forget examples given away
    distance: Optional[Node] = None  # L2 to the original (None for the original itself)
    interpolate: Optional[Node] = None  # LMC from the original


@dataclass(frozen=True)
class Cell:
    """A place in a corrupted-data task space."""

    corruption: str  # the corruption's registry name
    discovery_rate: float

    def as_dict(self) -> dict:
        return {"corruption": self.corruption, "discovery_rate": self.discovery_rate}


@dataclass(frozen=True, eq=False)
class Task:
    """What the models of a seed train on and forget: the `forget` section of the nodes that read the forget set,
    and in a task space the `corruption` section of every node that reads the training set, its cell and the size
    of its attack pool (which caps the relearning k grid)."""

    forget: dict
    corruption: Optional[dict] = None
    cell: Optional[Cell] = None
    attack_pool: Optional[int] = None
    analysed: bool = True  # relearning attacks, L2 and LMC attach to its models

    @property
    def training(self) -> dict:
        return {} if self.corruption is None else {"corruption": self.corruption}

    @property
    def where(self) -> str:
        """The label's suffix: nothing, or the corruption and the discovery rate."""
        return "" if self.cell is None else f" {self.cell.corruption} rate={self.cell.discovery_rate:g}"


@dataclass
class SeedControls:
    seed: int
    original: ModelNodes
    retrain: ModelNodes  # the gold standard, and the relearning control
    cell: Optional[Cell] = (
        None  # in a task space, the controls are the cell's (the original measured on its forget set)
    )


@dataclass
class ResultRow:
    """One method setting on one seed (and cell). The oracle's row is the seed's retrained control."""

    setting: MethodSetting
    seed: int
    nodes: ModelNodes
    cell: Optional[Cell] = None


@dataclass
class SweepDAG:
    nodes: list[Node]  # in topological order
    memorization: Optional[Node]
    controls: dict  # seed -> SeedControls; in a task space (seed, Cell) -> SeedControls
    results: list[ResultRow]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)


class DagBuilder:
    """Builds the DAG of one spec; `attack_pool` (forget examples an attacker may use) caps the k grid."""

    def __init__(self, spec: SweepSpec, attack_pool: Optional[int] = None):
        self.spec = spec
        self.nodes: list[Node] = []
        self._seen: dict[str, Node] = {}
        dataset = as_dict(spec.dataset)
        attack_only = attack_only_fields(DATASETS.get(spec.dataset.name).config)
        self.data = {
            "dataset": {**dataset, "args": {k: v for k, v in dataset["args"].items() if k not in attack_only}},
            "model": as_dict(spec.model),
            "speed": as_dict(spec.speed),
        }
        # Only attacks that train on the corrupted test copy see the fields that describe it.
        self.attack_data = (
            {**self.data, "dataset": dataset} if uses_corrupted_test(spec.relearn.relearn_set) else self.data
        )
        self.forget = as_dict(spec.forget)
        self.relearn = {k: v for k, v in as_dict(spec.relearn).items() if k != "k"}
        self.evaluation = {"evaluation": as_dict(spec.evaluation)}  # what the evaluate and relearn nodes score on
        # The k grid stops at the attack pool: k forget examples must exist to be given to the attacker.
        self.ks = usable_ks(spec.relearn.k, spec.relearn.relearn_set, attack_pool)
        self.memorization = self._memorization() if spec.forget.criterion != "random" else None
        # Every node that reads the forget set depends on the memorization node that chose it.
        self.forget_inputs = {"forget_scores": self.memorization}

    def add(
        self,
        kind: str,
        config: dict,
        label: str,
        slot: str = "",
        about: Optional[dict] = None,
        **inputs: Optional[Node],
    ) -> Node:
        inputs = {role: n for role, n in inputs.items() if n is not None}
        # The same job asked for twice (a chain's start that is also swept on its own) is one node.
        identity = canonical_json([kind, config, {role: id(n) for role, n in inputs.items()}])
        if identity not in self._seen:
            self._seen[identity] = Node(kind, config, inputs, label, slot, about=dict(about or {}))
            self.nodes.append(self._seen[identity])
        return self._seen[identity]

    def build(self) -> SweepDAG:
        settings = [
            s
            for i, m in enumerate(self.spec.methods)
            for s in expand_method(m, f"methods[{i}]", self.spec.method_overrides)
        ]
        controls, results = {}, []
        for seed in self.spec.seeds:
            for task in self._tasks(seed):
                seed_controls = self._controls(seed, task)
                controls[seed if task.cell is None else (seed, task.cell)] = seed_controls
                results.extend(self._result(setting, seed_controls, task) for setting in settings)
        return SweepDAG(self.nodes, self.memorization, controls, results)

    def _tasks(self, seed: int) -> list[Task]:
        """The sweep's one forget set, or every corruption x discovery rate of its task space."""
        corruption = self.spec.corruption
        if corruption is None:
            return [Task(self.forget)]
        pool_fraction = self.spec.forget.attack_pool_fraction
        analysed = corruption.discovery_rates if corruption.analysed_rates is None else corruption.analysed_rates
        return [
            Task(
                {"discovery_rate": rate, "attack_pool_fraction": pool_fraction},
                section,
                Cell(section["name"], rate),
                int(pool_fraction * discovered_count(section["size"], rate)),
                rate in analysed,
            )
            for section in corruption_sections(corruption, seed)
            for rate in corruption.discovery_rates
        ]

    def _memorization(self) -> Node:
        """The scores node; sharded, n nodes each train a contiguous block of the models and this one merges them."""
        config = {**self.data, "memorization": as_dict(self.spec.memorization)}
        shards = (
            self.spec.memorization.shards if self.spec.memorization.scores_file is None else 1
        )  # a file is read, never sharded
        parts = {
            f"shard_{i}": self.add(
                "memorization", {**config, "shard": {"index": i, "count": shards}}, f"memorization shard {i}/{shards}"
            )
            for i in range(shards if shards > 1 else 0)
        }
        return self.add("memorization", config, "memorization", **parts)

    def _controls(self, seed: int, task: Task) -> SeedControls:
        train = {**self.data, **task.training, "train": as_dict(self.spec.train), "seed": seed}
        label = f"seed={seed}{task.where}"
        # Canaries are relabelled in the training set itself, so with them even the original reads the forget set.
        canaries = {"forget": task.forget} if self.spec.forget.canary_fraction > 0 else {}
        # In a task space one original serves every rate: its label and record name the corruption only.
        shared = f"seed={seed}" + ("" if task.cell is None else f" {task.cell.corruption}")
        cell = {} if task.cell is None else task.cell.as_dict()
        about = {
            "original": {
                "method": "original",
                "seed": seed,
                "setting": "original",
                **{k: v for k, v in cell.items() if k == "corruption"},
            },
            "retrain": {"method": "retrain", "seed": seed, "setting": "retrain (control)", **cell},
        }
        original = self.add(
            "train_original",
            {**train, **canaries},
            f"original {shared}",
            about=about["original"],
            **(self.forget_inputs if canaries else {}),
        )
        retrain = self.add(
            "train_retrain",
            {**train, "forget": task.forget},
            f"retrain {label}",
            about=about["retrain"],
            **self.forget_inputs,
        )
        return SeedControls(
            seed,
            self._measured(original, f"original {label}", seed, task),
            self._measured(retrain, f"retrain {label}", seed, task, original=original),
            task.cell,
        )

    def _result(self, setting: MethodSetting, controls: SeedControls, task: Task) -> ResultRow:
        if setting.is_oracle:  # `retrain` is the control every sweep already has
            return ResultRow(setting, controls.seed, controls.retrain, task.cell)
        seed, original = controls.seed, controls.original.model
        unlearned = self._unlearned(setting, seed, original, task)
        return ResultRow(
            setting,
            seed,
            self._measured(
                unlearned,
                f"{setting.label} seed={seed}{task.where}",
                seed,
                task,
                f"{setting.slot} seed={seed}{task.where}",
                original,
            ),
            task.cell,
        )

    def _unlearned(self, setting: MethodSetting, seed: int, original: Node, task: Task) -> Node:
        start = original if setting.start is None else self._unlearned(setting.start, seed, original, task)
        config = {
            **self.data,
            **task.training,
            "forget": task.forget,
            "method": setting.name,
            "hparams": setting.hparams,
            "seed": seed,
        }
        about = about_setting(setting, seed) | (task.cell.as_dict() if task.cell else {})
        return self.add(
            "unlearn",
            config,
            f"unlearn {setting.label} seed={seed}{task.where}",
            f"unlearn {setting.slot} seed={seed}{task.where}",
            about=about,
            start=start,
            original=original,
            **self.forget_inputs,
        )

    def _measured(
        self, model: Node, label: str, seed: int, task: Task, slot: str = "", original: Optional[Node] = None
    ) -> ModelNodes:
        """Evaluation and relearning attacks of `model`; L2 and LMC to `original` when given."""
        slot, about = slot or label, model.about
        with_forget = {**self.data, **task.training, "forget": task.forget}
        evaluate = self.add(
            "evaluate",
            {**with_forget, **self.evaluation},
            f"evaluate {label}",
            f"evaluate {slot}",
            about,
            model=model,
            **self.forget_inputs,
        )
        if not task.analysed:
            return ModelNodes(model, evaluate, {})
        ks = (
            self.ks
            if task.cell is None
            else usable_ks(self.spec.relearn.k, self.spec.relearn.relearn_set, task.attack_pool)
        )
        relearn = {
            k: self.add(
                "relearn",
                {
                    **self.attack_data,
                    **task.training,
                    "forget": task.forget,
                    "relearn": self.relearn,
                    **self.evaluation,
                    "k": k,
                    "seed": seed,
                },
                f"relearn {label} k={k}",
                f"relearn {slot} k={k}",
                about,
                model=model,
                **self.forget_inputs,
            )
            for k in ks
        }
        if original is None:
            return ModelNodes(model, evaluate, relearn)
        distance = self.add(
            "distance", dict(self.data), f"distance {label}", f"distance {slot}", about, a=original, b=model
        )
        lmc = self.add(
            "interpolate",
            {**with_forget, "lmc": as_dict(self.spec.lmc)},
            f"lmc {label}",
            f"lmc {slot}",
            about,
            a=original,
            b=model,
            **self.forget_inputs,
        )
        return ModelNodes(model, evaluate, relearn, distance, lmc)


def about_setting(setting: MethodSetting, seed: int) -> dict:
    """What an unlearned model is, for its runs: the method, its hparams, the seed and the model it started from."""
    return {
        "method": setting.name,
        "hparams": setting.hparams,
        "seed": seed,
        "setting": setting.label,
        "start_from": "original" if setting.start is None else setting.start.label,
    }


def build_dag(spec: SweepSpec, attack_pool: Optional[int] = None) -> SweepDAG:
    return DagBuilder(spec, attack_pool).build()
