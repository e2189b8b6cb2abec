"""The sweep file: a typed OmegaConf schema, `key=value` overrides, and validation that names the offending key.

Sections whose schema depends on a registry entry (`dataset.args`, `model.args`, a method's `hparams`) are checked
against that entry's config dataclass, with the method's defaults from configs/methods/<name>.yaml underneath.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from workloads.data import DATASETS
from workloads.forget import CRITERIA, ForgetConfig
from workloads.memorization import MemorizationConfig
from workloads.methods import METHODS
from workloads.models import MODELS
from workloads.relearn import RelearnConfig, relearn_set_problem
from workloads.speed import PRECISIONS, SpeedConfig
from workloads.train import TrainConfig
from workloads.weightspace import LMCConfig, interpolation_points

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class SpecError(ValueError):
    """Bad sweep input: one message naming the file and key."""


@dataclass
class Component:
    name: str = "???"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetSpec(Component):
    limit_train: Optional[int] = None  # keep the first N training examples (smoke runs)
    limit_test: Optional[int] = None


@dataclass
class MethodSpec:
    name: str = "???"
    hparams: dict[str, Any] = field(default_factory=dict)  # merged over configs/methods/<name>.yaml
    grid: dict[str, list[Any]] = field(default_factory=dict)  # hparam -> values; the product is swept
    # The initial safeguard: another method ({name, hparams}) whose unlearned model this one starts from.
    start_from: Optional[dict[str, Any]] = None


@dataclass
class SearchSpec:
    """A hyperparameter search over one unlearning method, run with Ray Tune (orchestrator/search.py)."""
    name: str = "???"  # the method
    space: dict[str, Any] = field(default_factory=dict)  # hparam -> {loguniform|uniform|randint: [lo, hi]} or {choice: [...]}
    hparams: dict[str, Any] = field(default_factory=dict)  # fixed values under the space
    algorithm: str = "random"  # random | optuna (TPE)
    metric: str = "forget_gap"  # forget_gap | heldout_forget_gap (minimised), tow (maximised)
    test_acc_floor: float = 0.0  # a trial below this test accuracy ranks below every trial above it
    num_samples: int = 8
    max_concurrent: int = 2
    seed: int = 0


@dataclass
class RelearnSpec(RelearnConfig):
    k: list[int] = field(default_factory=lambda: [0])


@dataclass
class TrackingSpec:
    uri: str = "sqlite:///mlflow.db"
    # Where a new experiment keeps checkpoints: None is ./mlartifacts for an embedded store and the server's default
    # artifact root (S3 on a cluster) for a tracking server; or any URI (s3://bucket/prefix).
    artifact_location: Optional[str] = None
    experiment: str = "unlearn-sweep"


@dataclass
class SweepSpec:
    name: str = "???"
    seeds: list[int] = field(default_factory=lambda: [43])
    device: str = "auto"
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: Component = field(default_factory=Component)
    train: TrainConfig = field(default_factory=TrainConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    forget: ForgetConfig = field(default_factory=ForgetConfig)
    memorization: MemorizationConfig = field(default_factory=MemorizationConfig)
    methods: list[MethodSpec] = field(default_factory=list)
    search: list[SearchSpec] = field(default_factory=list)  # each best setting found joins the methods
    # Applied over every method's hparams, for the keys a method has (e.g. epochs, batch_size in a smoke profile).
    method_overrides: dict[str, Any] = field(default_factory=dict)
    relearn: RelearnSpec = field(default_factory=RelearnSpec)
    lmc: LMCConfig = field(default_factory=LMCConfig)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    # num_cpus / num_gpus per node kind, per method or `default` (orchestrator/resources.py); the Ray executor's business.
    resources: dict[str, Any] = field(default_factory=dict)
    # Named sets of overrides, applied by naming them on the command line (`unlearn-sweep run study.yaml smoke`).
    profiles: dict[str, Any] = field(default_factory=dict)


def _omegaconf_message(error: OmegaConfBaseException, where: str = "") -> str:
    """'<where>.<full key>: <first line of the reason>', the key path spelled as the user writes it."""
    key = getattr(error, "full_key", None)
    first_line = str(error).splitlines()[0]
    if not key:
        return f"{where}: {first_line}" if where else first_line
    return f"{where}.{key}: {first_line}" if where and not where.endswith(".yaml") else f"{where + ': ' if where else ''}{key}: {first_line}"


def checked(schema: type, values: Any, where: str) -> Any:
    """values merged onto `schema`'s structured config -> a plain dataclass instance, or SpecError naming the key."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise SpecError(f"{where}.{missing[0]}: required value is missing")
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise SpecError(_omegaconf_message(error, where)) from None


@functools.lru_cache(maxsize=None)
def _method_file(name: str) -> dict:
    path = CONFIG_DIR / "methods" / f"{name}.yaml"
    if not path.exists():
        raise SpecError(f"method {name!r} has no defaults file {path}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def method_defaults(name: str) -> dict:
    """The method's default hparams (its defaults file, less the `resources:` it asks of a worker)."""
    return {k: v for k, v in _method_file(name).items() if k != "resources"}


def method_resources(name: str) -> Optional[dict]:
    return _method_file(name).get("resources") if name in METHODS else None


def changed_hparams(method: str, hparams: dict) -> str:
    """The hparams that differ from the method's defaults file, as 'k=v ...'."""
    defaults = method_defaults(method)
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(hparams.items()) if defaults.get(k) != v)


@dataclass(frozen=True)
class MethodSetting:
    """One point of a method's grid, fully resolved, and the setting it starts from (None: the original)."""

    name: str
    hparams: dict
    start: Optional["MethodSetting"] = None

    def as_dict(self) -> dict:
        """For summary.json: the method, its hparams and, for a chain, what it started from."""
        return {"method": self.name, "hparams": self.hparams, "start_from": None if self.start is None else self.start.as_dict()}

    @property
    def label(self) -> str:
        own = f"{self.name} {changed_hparams(self.name, self.hparams)}".strip()
        return own if self.start is None else f"{own} after {self.start.label}"


def check_method_name(name: str, where: str) -> None:
    if name not in METHODS:
        raise SpecError(f"{where}.name: unknown unlearning method {name!r}; known: {', '.join(METHODS.names())}")


def expand_method(spec: MethodSpec, where: str, overrides: Optional[dict] = None) -> list[MethodSetting]:
    """One MethodSetting per point of the method's grid (times the points of its start_from's grid)."""
    check_method_name(spec.name, where)
    method = METHODS.get(spec.name)
    starts: list[Optional[MethodSetting]] = [None]
    if spec.start_from is not None:
        starts = expand_method(checked(MethodSpec, spec.start_from, f"{where}.start_from"), f"{where}.start_from", overrides)
    elif getattr(method, "requires_start_model", False):
        raise SpecError(f"{where}: {spec.name} needs an initial safeguard model to start from; "
                        f"add start_from: {{name: circuit_breakers}} (or another method)")
    points = [dict(zip(spec.grid, values)) for values in itertools.product(*spec.grid.values())] or [{}]
    settings = []
    fields = set(OmegaConf.structured(method.Config).keys())
    forced = {k: v for k, v in (overrides or {}).items() if k in fields}
    for point in points:
        values = OmegaConf.merge(method_defaults(spec.name), spec.hparams, point, forced)
        config = checked(method.Config, values, f"{where}.hparams")
        hparams = OmegaConf.to_container(OmegaConf.structured(config))
        settings.extend(MethodSetting(spec.name, hparams, start) for start in starts)
    return settings


def _load_with_base(path: Path, seen: tuple[Path, ...]):
    """A sweep file may start from another (`base: other.yaml`, relative to it) and change only some keys."""
    if path.resolve() in seen:
        raise SpecError(f"{path}: base: files include each other")
    if not path.is_file():
        raise SpecError(f"{path}: no such sweep file")
    try:
        raw = OmegaConf.load(path)
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    base = raw.pop("base", None)
    if base is None:
        return raw
    return OmegaConf.merge(_load_with_base(path.parent / str(base), seen + (path.resolve(),)), raw)


def load_spec(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    """The sweep file (and its base), then named profiles and key=value overrides, in command-line order."""
    path = Path(path)
    raw = _load_with_base(path, seen=())
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SweepSpec), raw)
        for override in overrides:
            if "=" in override:  # update, not merge: a path may index a list (methods.0.hparams.lr=0.01)
                key, raw = override.split("=", 1)
                value = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={raw}"]))["value"]
                OmegaConf.update(merged, key, value, merge=True)
            elif override in merged.profiles:
                merged = OmegaConf.merge(merged, merged.profiles[override])
            else:
                known = ", ".join(merged.profiles) or "none"
                raise SpecError(f"override {override!r}: expected key=value or a profile name (profiles: {known})")
    except OmegaConfBaseException as error:
        raise SpecError(_omegaconf_message(error, path.name)) from None
    spec = checked(SweepSpec, merged, path.name)
    validate(spec, path.name)
    return spec


def validate(spec: SweepSpec, where: str) -> None:
    """Everything that can be known wrong before a job starts."""
    for section, registry in (("dataset", DATASETS), ("model", MODELS)):
        component: Component = getattr(spec, section)
        if component.name not in registry:
            raise SpecError(f"{where}: {section}.name: unknown {section} {component.name!r}; known: {', '.join(registry.names())}")
        checked(registry.get(component.name).config, component.args, f"{where}: {section}.args")
    if not spec.methods and not spec.search:
        raise SpecError(f"{where}: methods: the sweep lists no unlearning method")
    from orchestrator.search import check_search
    for i, search in enumerate(spec.search):
        check_search(search, f"{where}: search[{i}]")
    for i, method in enumerate(spec.methods):
        expand_method(method, f"{where}: methods[{i}]", spec.method_overrides)
    if spec.speed.precision not in PRECISIONS:
        raise SpecError(f"{where}: speed.precision: must be one of {', '.join(PRECISIONS)}, got {spec.speed.precision!r}")
    if not 0 <= spec.forget.canary_fraction < 1:
        raise SpecError(f"{where}: forget.canary_fraction: must be in [0, 1), got {spec.forget.canary_fraction}")
    if spec.forget.criterion not in CRITERIA:
        raise SpecError(f"{where}: forget.criterion: must be one of {', '.join(CRITERIA)}, got {spec.forget.criterion!r}")
    if not 0 < spec.forget.fraction <= 1:
        raise SpecError(f"{where}: forget.fraction: must be in (0, 1], got {spec.forget.fraction}")
    if not 0 <= spec.forget.attack_pool_fraction < 1:
        raise SpecError(f"{where}: forget.attack_pool_fraction: must be in [0, 1), got {spec.forget.attack_pool_fraction}")
    if not 0 < spec.memorization.subset_fraction < 1:
        raise SpecError(f"{where}: memorization.subset_fraction: must be in (0, 1), got {spec.memorization.subset_fraction}")
    if not 1 <= spec.memorization.shards <= spec.memorization.num_models:
        raise SpecError(f"{where}: memorization.shards: must be in [1, memorization.num_models={spec.memorization.num_models}], "
                        f"got {spec.memorization.shards}")
    dataset_args = checked(DATASETS.get(spec.dataset.name).config, spec.dataset.args, f"{where}: dataset.args")
    relearn_problem = relearn_set_problem(spec.relearn.relearn_set, spec.forget.target_class, spec.dataset.name, dataset_args)
    if relearn_problem is not None:  # unknown set; +retain_cls without a target class; corrupted_test* without corrupted data
        raise SpecError(f"{where}: relearn.relearn_set: {relearn_problem}")
    if any(k < 0 for k in spec.relearn.k):
        raise SpecError(f"{where}: relearn.k: values must be >= 0, got {spec.relearn.k}")
    try:
        interpolation_points(spec.lmc.stride)
    except ValueError as error:
        raise SpecError(f"{where}: {error}") from None
    if not spec.seeds:
        raise SpecError(f"{where}: seeds: at least one seed is needed")
    from orchestrator.dag import KINDS
    from orchestrator.resources import check_resources
    check_resources(spec.resources, KINDS, METHODS.names(), where)


def as_dict(config: Any) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)
