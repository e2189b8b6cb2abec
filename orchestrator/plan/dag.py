"""Sweep spec -> DAG of nodes. A node is a kind, a fully resolved config and named inputs; its content key is
computed once its inputs' keys and (if it reads the forget set) the forget-set indices are known (plan/sweep.py).

Per seed the DAG holds the original and the retrained control; per method setting and seed an unlearned model
(chained on another one for an initial safeguard). Every model is measured the same way (`ModelNodes`): evaluated,
attacked by relearning for each k, and, for all but the original, compared with the original in weight space.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

from orchestrator.plan.identity import canonical_json
from orchestrator.spec import MethodSetting, SweepSpec, as_dict, expand_method
from workloads.data import DATASETS, attack_only_fields
from workloads.nodes import NODE_KINDS
from workloads.relearn_sets import usable_ks, uses_corrupted_test


@dataclass(eq=False)
class Node:
    kind: str
    config: dict
    inputs: dict[str, "Node"] = field(default_factory=dict)
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


@dataclass
class SeedControls:
    seed: int
    original: ModelNodes
    retrain: ModelNodes  # the gold standard, and the relearning control


@dataclass
class ResultRow:
    """One method setting on one seed. The oracle's row is the seed's retrained control."""

    setting: MethodSetting
    seed: int
    nodes: ModelNodes


@dataclass
class SweepDAG:
    nodes: list[Node]  # in topological order
    memorization: Optional[Node]
    controls: dict[int, SeedControls]
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
        self.data = {"dataset": {**dataset, "args": {k: v for k, v in dataset["args"].items() if k not in attack_only}},
                     "model": as_dict(spec.model), "speed": as_dict(spec.speed)}
        # Only attacks that train on the corrupted test copy see the fields that describe it.
        self.attack_data = {**self.data, "dataset": dataset} if uses_corrupted_test(spec.relearn.relearn_set) else self.data
        self.forget = as_dict(spec.forget)
        self.relearn = {k: v for k, v in as_dict(spec.relearn).items() if k != "k"}
        self.evaluation = {"evaluation": as_dict(spec.evaluation)}  # what the evaluate and relearn nodes score on
        # The k grid stops at the attack pool: k forget examples must exist to be given to the attacker.
        self.ks = usable_ks(spec.relearn.k, spec.relearn.relearn_set, attack_pool)
        self.memorization = self._memorization() if spec.forget.criterion != "random" else None
        # Every node that reads the forget set depends on the memorization node that chose it.
        self.forget_inputs = {"forget_scores": self.memorization}

    def add(self, kind: str, config: dict, label: str, slot: str = "", about: Optional[dict] = None,
            **inputs: Optional[Node]) -> Node:
        inputs = {role: n for role, n in inputs.items() if n is not None}
        # The same job asked for twice (a chain's start that is also swept on its own) is one node.
        identity = canonical_json([kind, config, {role: id(n) for role, n in inputs.items()}])
        if identity not in self._seen:
            self._seen[identity] = Node(kind, config, inputs, label, slot, about=dict(about or {}))
            self.nodes.append(self._seen[identity])
        return self._seen[identity]

    def build(self) -> SweepDAG:
        settings = [s for i, m in enumerate(self.spec.methods) for s in expand_method(m, f"methods[{i}]", self.spec.method_overrides)]
        controls, results = {}, []
        for seed in self.spec.seeds:
            controls[seed] = self._controls(seed)
            results.extend(self._result(setting, controls[seed]) for setting in settings)
        return SweepDAG(self.nodes, self.memorization, controls, results)

    def _memorization(self) -> Node:
        """The scores node; sharded, n nodes each train a contiguous block of the models and this one merges them."""
        config = {**self.data, "memorization": as_dict(self.spec.memorization)}
        shards = self.spec.memorization.shards if self.spec.memorization.scores_file is None else 1  # a file is read, never sharded
        parts = {f"shard_{i}": self.add("memorization", {**config, "shard": {"index": i, "count": shards}}, f"memorization shard {i}/{shards}")
                 for i in range(shards if shards > 1 else 0)}
        return self.add("memorization", config, "memorization", **parts)

    def _controls(self, seed: int) -> SeedControls:
        train = {**self.data, "train": as_dict(self.spec.train), "seed": seed}
        label = f"seed={seed}"
        # Canaries are relabelled in the training set itself, so with them even the original reads the forget set.
        canaries = {"forget": self.forget} if self.spec.forget.canary_fraction > 0 else {}
        about = {role: {"method": role, "seed": seed, "setting": name}
                 for role, name in (("original", "original"), ("retrain", "retrain (control)"))}
        original = self.add("train_original", {**train, **canaries}, f"original {label}", about=about["original"],
                            **(self.forget_inputs if canaries else {}))
        retrain = self.add("train_retrain", {**train, "forget": self.forget}, f"retrain {label}", about=about["retrain"],
                           **self.forget_inputs)
        return SeedControls(seed, self._measured(original, f"original {label}", seed),
                            self._measured(retrain, f"retrain {label}", seed, original=original))

    def _result(self, setting: MethodSetting, controls: SeedControls) -> ResultRow:
        if setting.is_oracle:  # `retrain` is the control every sweep already has
            return ResultRow(setting, controls.seed, controls.retrain)
        seed, original = controls.seed, controls.original.model
        unlearned = self._unlearned(setting, seed, original)
        return ResultRow(setting, seed, self._measured(unlearned, f"{setting.label} seed={seed}", seed,
                                                       f"{setting.slot} seed={seed}", original))

    def _unlearned(self, setting: MethodSetting, seed: int, original: Node) -> Node:
        start = original if setting.start is None else self._unlearned(setting.start, seed, original)
        config = {**self.data, "forget": self.forget, "method": setting.name, "hparams": setting.hparams, "seed": seed}
        return self.add("unlearn", config, f"unlearn {setting.label} seed={seed}", f"unlearn {setting.slot} seed={seed}",
                        about=about_setting(setting, seed), start=start, original=original, **self.forget_inputs)

    def _measured(self, model: Node, label: str, seed: int, slot: str = "", original: Optional[Node] = None) -> ModelNodes:
        """Evaluation and relearning attacks of `model`; L2 and LMC to `original` when given."""
        slot, about = slot or label, model.about
        with_forget = {**self.data, "forget": self.forget}
        evaluate = self.add("evaluate", {**with_forget, **self.evaluation}, f"evaluate {label}", f"evaluate {slot}", about,
                            model=model, **self.forget_inputs)
        relearn = {k: self.add("relearn", {**self.attack_data, "forget": self.forget, "relearn": self.relearn, **self.evaluation,
                                           "k": k, "seed": seed},
                               f"relearn {label} k={k}", f"relearn {slot} k={k}", about, model=model, **self.forget_inputs)
                   for k in self.ks}
        if original is None:
            return ModelNodes(model, evaluate, relearn)
        distance = self.add("distance", dict(self.data), f"distance {label}", f"distance {slot}", about, a=original, b=model)
        lmc = self.add("interpolate", {**with_forget, "lmc": as_dict(self.spec.lmc)}, f"lmc {label}", f"lmc {slot}", about,
                       a=original, b=model, **self.forget_inputs)
        return ModelNodes(model, evaluate, relearn, distance, lmc)


def about_setting(setting: MethodSetting, seed: int) -> dict:
    """What an unlearned model is, for its runs: the method, its hparams, the seed and the model it started from."""
    return {"method": setting.name, "hparams": setting.hparams, "seed": seed, "setting": setting.label,
            "start_from": "original" if setting.start is None else setting.start.label}


def build_dag(spec: SweepSpec, attack_pool: Optional[int] = None) -> SweepDAG:
    return DagBuilder(spec, attack_pool).build()
