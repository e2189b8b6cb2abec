"""Sweep spec -> DAG of nodes. A node is a kind, a fully resolved config and named inputs; its content key is
computed once its inputs' keys and (if it reads the forget set) the forget-set indices are known."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from orchestrator.keys import canonical_json, sha256_hex
from orchestrator.spec import MethodSetting, SweepSpec, as_dict, expand_method
from workloads.methods import METHODS
from workloads.data import DATASETS, attack_only_fields, location_fields
from workloads.relearn import usable_ks, uses_corrupted_test

KINDS = ("memorization", "train_original", "train_retrain", "unlearn", "relearn", "interpolate", "distance", "evaluate")


@dataclass(eq=False)
class Node:
    kind: str
    config: dict
    inputs: dict[str, "Node"] = field(default_factory=dict)
    label: str = ""
    reads_forget_set: bool = False  # its key includes the forget/retain index hashes
    slot: str = ""  # the label without hyperparameters: earlier runs in the same slot explain why this one is new
    key: Optional[str] = None

    def __post_init__(self):
        assert self.kind in KINDS, self.kind

    @property
    def short(self) -> str:
        return (self.key or "?" * 12)[:12]


@dataclass
class SweepDAG:
    nodes: list[Node]  # in topological order
    memorization: Optional[Node]
    # Named handles the summary reads, per seed.
    original: dict[int, Node]
    original_eval: dict[int, Node]
    original_relearn: dict[int, dict[int, Node]]  # the attack on the original: what relearning adds to a model that never forgot
    retrain: dict[int, Node]
    retrain_eval: dict[int, Node]
    retrain_relearn: dict[int, dict[int, Node]]
    retrain_distance: dict[int, Node]
    retrain_lmc: dict[int, Node]
    results: list[dict]  # one per (method setting, seed): name, hparams, seed and its nodes

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)


def key_view(config: dict) -> dict:
    """A node's config as its content key sees it: without the fields that only locate files (the dataset's folder,
    the C-score file's path, whose bytes `scores_sha256` already stands for)."""
    view = dict(config)
    if "dataset" in view:
        hidden = location_fields(DATASETS.get(view["dataset"]["name"]).config)
        args = {k: v for k, v in view["dataset"]["args"].items() if k not in hidden}
        view["dataset"] = {**view["dataset"], "args": args}
    if (view.get("memorization") or {}).get("scores_file") is not None:
        view["memorization"] = {**view["memorization"], "scores_file": "<scores_sha256>"}
    return view


def slot_of(setting: MethodSetting) -> str:
    """A method's place in the sweep regardless of its hyperparameters (chains keep their start's name)."""
    return setting.name if setting.start is None else f"{setting.name} after {slot_of(setting.start)}"


def build_dag(spec: SweepSpec, attack_pool: Optional[int] = None) -> SweepDAG:
    """`attack_pool` (the number of forget examples an attacker may use) caps the k grid; None keeps it whole."""
    nodes: list[Node] = []

    seen: dict[str, Node] = {}

    def add(kind: str, config: dict, label: str, reads_forget_set: bool = False, slot: str = "", **inputs: Optional[Node]) -> Node:
        inputs = {role: n for role, n in inputs.items() if n is not None}
        # The same job asked for twice (a chain's start that is also swept on its own) is one node.
        identity = canonical_json([kind, config, {role: id(n) for role, n in inputs.items()}])
        if identity not in seen:
            seen[identity] = Node(kind, config, inputs, label, reads_forget_set, slot or label)
            nodes.append(seen[identity])
        return seen[identity]

    dataset = as_dict(spec.dataset)
    attack_only = attack_only_fields(DATASETS.get(spec.dataset.name).config)
    data = {"dataset": {**dataset, "args": {k: v for k, v in dataset["args"].items() if k not in attack_only}},
            "model": as_dict(spec.model), "speed": as_dict(spec.speed)}
    # Only attacks that train on the corrupted test copy see the fields that describe it.
    attack_data = {**data, "dataset": dataset} if uses_corrupted_test(spec.relearn.relearn_set) else data
    forget = as_dict(spec.forget)
    memorization = None
    if spec.forget.criterion != "random":
        scores_file = spec.memorization.scores_file
        shards = spec.memorization.shards if scores_file is None else 1  # a C-score file is read, never sharded
        # `shards` enters the config only above 1, so unsharded keys stay those from before it existed.
        config = {**data, "memorization": {k: v for k, v in as_dict(spec.memorization).items() if k != "shards" or shards > 1}}
        if scores_file is not None:  # the file's bytes, not its path, decide the result
            config["scores_sha256"] = sha256_hex(Path(scores_file).read_bytes()) if Path(scores_file).is_file() else None
        # Sharded: n nodes each train a contiguous block of the models; the memorization node merges them.
        parts = {f"shard_{i}": add("memorization", {**config, "shard": {"index": i, "count": shards}}, f"memorization shard {i}/{shards}")
                 for i in range(shards if shards > 1 else 0)}
        memorization = add("memorization", config, "memorization", **parts)
    # Every node that reads the forget set depends on the memorization node that chose it.
    forget_inputs = {"forget_scores": memorization}
    relearn_config = {k: v for k, v in as_dict(spec.relearn).items() if k != "k"}
    # The k grid stops at the attack pool: k forget examples must exist to be given to the attacker.
    ks = usable_ks(spec.relearn.k, spec.relearn.relearn_set, attack_pool)

    def evaluate(model: Node, label: str, slot: str = "") -> Node:
        return add("evaluate", {**data, "forget": forget}, f"evaluate {label}", True, f"evaluate {slot or label}",
                   model=model, **forget_inputs)

    def attacks(model: Node, label: str, seed: int, slot: str = "") -> dict[int, Node]:
        return {k: add("relearn", {**attack_data, "forget": forget, "relearn": relearn_config, "k": k, "seed": seed},
                       f"relearn {label} k={k}", True, f"relearn {slot or label} k={k}", model=model, **forget_inputs)
                for k in ks}

    def weight_space(model: Node, original: Node, label: str, slot: str = "") -> tuple[Node, Node]:
        distance = add("distance", dict(data), f"distance {label}", False, f"distance {slot or label}", a=original, b=model)
        lmc = add("interpolate", {**data, "forget": forget, "lmc": as_dict(spec.lmc)}, f"lmc {label}", True,
                  f"lmc {slot or label}", a=original, b=model, **forget_inputs)
        return distance, lmc

    dag = SweepDAG(nodes, memorization, {}, {}, {}, {}, {}, {}, {}, {}, [])
    train = as_dict(spec.train)
    settings = [s for i, m in enumerate(spec.methods) for s in expand_method(m, f"methods[{i}]", spec.method_overrides)]
    # Canaries are relabelled in the training set itself, so with them even the original depends on the forget set.
    with_canaries = spec.forget.canary_fraction > 0
    for seed in spec.seeds:
        original = add("train_original", {**data, "train": train, "seed": seed, **({"forget": forget} if with_canaries else {})},
                       f"original seed={seed}", with_canaries, **(forget_inputs if with_canaries else {}))
        retrain = add("train_retrain", {**data, "train": train, "seed": seed, "forget": forget},
                      f"retrain seed={seed}", True, **forget_inputs)
        dag.original[seed], dag.retrain[seed] = original, retrain
        dag.original_eval[seed] = evaluate(original, f"original seed={seed}")
        dag.original_relearn[seed] = attacks(original, f"original seed={seed}", seed)
        dag.retrain_eval[seed] = evaluate(retrain, f"retrain seed={seed}")
        dag.retrain_relearn[seed] = attacks(retrain, f"retrain seed={seed}", seed)
        dag.retrain_distance[seed], dag.retrain_lmc[seed] = weight_space(retrain, original, f"retrain seed={seed}")

        def unlearned_by(setting: MethodSetting) -> Node:
            start = original if setting.start is None else unlearned_by(setting.start)
            return add("unlearn", {**data, "forget": forget, "method": setting.name, "hparams": setting.hparams, "seed": seed},
                       f"unlearn {setting.label} seed={seed}", True, f"unlearn {slot_of(setting)} seed={seed}",
                       start=start, original=original, **forget_inputs)

        for setting in settings:
            if getattr(METHODS.get(setting.name), "is_oracle", False):  # `retrain` is the control every sweep already has
                dag.results.append({"method": setting.name, "hparams": setting.hparams, "seed": seed, "start_from": None, "unlearn": retrain,
                                    "evaluate": dag.retrain_eval[seed], "relearn": dag.retrain_relearn[seed],
                                    "distance": dag.retrain_distance[seed], "interpolate": dag.retrain_lmc[seed]})
                continue
            label, slot = f"{setting.label} seed={seed}", f"{slot_of(setting)} seed={seed}"
            unlearned = unlearned_by(setting)
            distance, lmc = weight_space(unlearned, original, label, slot)
            dag.results.append({"method": setting.name, "hparams": setting.hparams, "seed": seed,
                                "start_from": setting.start, "unlearn": unlearned,
                                "evaluate": evaluate(unlearned, label, slot), "relearn": attacks(unlearned, label, seed, slot),
                                "distance": distance, "interpolate": lmc})
    return dag
