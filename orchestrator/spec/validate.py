"""Everything about a sweep that can be known wrong before a job starts, each failure one SpecError naming the key."""

from __future__ import annotations

import dataclasses
import math
import re

import torch

from orchestrator.spec.corruption import check_corruption
from orchestrator.spec.errors import SpecError, checked
from orchestrator.spec.methods import MethodSetting, expand_method
from orchestrator.spec.population import check_population
from orchestrator.spec.resources import check_resources
from orchestrator.spec.schema import Component, SweepSpec
from orchestrator.spec.search import check_search
from orchestrator.spec.selection import worst_case_config
from workloads.data import DATASETS
from workloads.forget import CRITERIA
from workloads.methods import METHODS
from workloads.models import MODELS, TiedDropoutOptions
from workloads.models.tied_dropout import check_options
from workloads.relearn_sets import relearn_set_problem
from workloads.speed import PRECISIONS
from workloads.train import OPTIMIZERS, check_recipe
from workloads.weightspace import interpolation_points

# A sweep's name becomes part of its sweep id, run names, file names of reports and a Ray Job's submission id.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def validate(spec: SweepSpec, where: str) -> list[MethodSetting]:
    """Raises SpecError naming the key of the first problem; returns the method settings it typed on the way."""
    _check_name(spec.name, where)
    _check_finite(spec, "", where)
    for section, registry in (("dataset", DATASETS), ("model", MODELS)):
        component: Component = getattr(spec, section)
        if component.name not in registry:
            known = ", ".join(registry.names())
            raise SpecError(f"{where}: {section}.name: unknown {section} {component.name!r}; known: {known}")
        checked(registry.get(component.name).config, component.args, f"{where}: {section}.args")
    if not spec.methods and not spec.search:
        raise SpecError(f"{where}: methods: the sweep lists no unlearning method")
    for i, search in enumerate(spec.search):
        check_search(search, f"{where}: search[{i}]")
    model = checked(MODELS.get(spec.model.name).config, spec.model.args, f"{where}: model.args")
    settings = []
    for i, method in enumerate(spec.methods):
        for setting in expand_method(method, f"{where}: methods[{i}]", spec.method_overrides):
            _check_method_setting(setting.name, setting.config, model, f"{where}: methods[{i}]")
            _check_finite(setting.config, f"methods[{i}].hparams", where)
            settings.append(setting)
    _check_positive(spec, where)
    _check_device(spec.device, where)
    _check_forget(spec, where)
    _check_model(model, where)
    check_corruption(spec, where)
    check_population(spec, where)
    _check_training(spec, where)
    _check_relearn(spec, where)
    try:
        interpolation_points(spec.lmc.stride)
    except ValueError as error:
        raise SpecError(f"{where}: {error}") from None
    if not spec.seeds:
        raise SpecError(f"{where}: seeds: at least one seed is needed")
    if repeated := sorted({seed for seed in spec.seeds if spec.seeds.count(seed) > 1}):
        raise SpecError(f"{where}: seeds: {repeated} listed twice; each seed names one model (its runs would be one)")
    check_resources(spec.resources, where)
    return settings


def _check_name(name: str, where: str) -> None:
    if not SAFE_NAME.fullmatch(str(name)):
        raise SpecError(
            f"{where}: name: {name!r} is not a safe sweep name (letters, digits, '.', '_', '-', starting with a letter "
            "or digit, at most 100): it names the sweep's runs, ids and files"
        )


def _check_finite(value, path: str, where: str) -> None:
    """No NaN or infinity anywhere in the sweep: a learning rate of .inf trains for hours into NaN weights."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(f"{where}: {path}: must be a finite number, got {value}")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((f"[{i}]", item) for i, item in enumerate(value))
    else:
        return
    for key, item in items:
        if key == "profiles":  # applied or not, they are checked as the values they set
            continue
        sub = f"{path}{key}" if str(key).startswith("[") else f"{path}.{key}" if path else str(key)
        _check_finite(item, sub, where)


def _check_training(spec: SweepSpec, where: str) -> None:
    if spec.speed.precision not in PRECISIONS:
        choices = ", ".join(PRECISIONS)
        raise SpecError(f"{where}: speed.precision: must be one of {choices}, got {spec.speed.precision!r}")
    for section, train in (("train", spec.train), ("memorization.train", spec.memorization.train)):
        allowed = OPTIMIZERS if section == "train" else ("adam",)  # the subset models train with Adam only
        if train.optimizer not in allowed:
            choices = ", ".join(allowed)
            raise SpecError(f"{where}: {section}.optimizer: must be one of {choices}, got {train.optimizer!r}")
    try:
        check_recipe(spec.train)  # the schedule, the checkpoint choice, the retrained baseline's departures
    except ValueError as error:
        raise SpecError(f"{where}: {error}") from None


def _check_relearn(spec: SweepSpec, where: str) -> None:
    dataset_args = checked(DATASETS.get(spec.dataset.name).config, spec.dataset.args, f"{where}: dataset.args")
    target_class = None if spec.corruption is not None else spec.forget.target_class  # a task space: every class
    # An unknown set; +retain_cls without a target class; corrupted_test* without corrupted data.
    problem = relearn_set_problem(spec.relearn.relearn_set, target_class, spec.dataset.name, dataset_args)
    if problem is not None:
        raise SpecError(f"{where}: relearn.relearn_set: {problem}")
    if any(k < 0 for k in spec.relearn.k):
        raise SpecError(f"{where}: relearn.k: values must be >= 0, got {spec.relearn.k}")


def _check_forget(spec: SweepSpec, where: str) -> None:
    forget, memorization = spec.forget, spec.memorization
    if not 0 <= forget.canary_fraction < 1:
        raise SpecError(f"{where}: forget.canary_fraction: must be in [0, 1), got {forget.canary_fraction}")
    if forget.criterion not in CRITERIA:
        raise SpecError(f"{where}: forget.criterion: must be one of {', '.join(CRITERIA)}, got {forget.criterion!r}")
    if not 0 < forget.fraction <= 1:
        raise SpecError(f"{where}: forget.fraction: must be in (0, 1], got {forget.fraction}")
    if not 0 <= forget.attack_pool_fraction < 1:
        raise SpecError(f"{where}: forget.attack_pool_fraction: must be in [0, 1), got {forget.attack_pool_fraction}")
    if not 0 < memorization.subset_fraction < 1:
        raise SpecError(f"{where}: memorization.subset_fraction: must be in (0, 1), got {memorization.subset_fraction}")
    worst_case_config(spec.worst_case, f"{where}: ")  # typed even when unused: a misspelt key is an error
    if forget.criterion == "worst_case" and forget.canary_fraction > 0:
        raise SpecError(
            f"{where}: forget.canary_fraction: canaries are in the original's training set, which the worst-case "
            "selection starts from; they do not combine with forget.criterion: worst_case"
        )
    if not 1 <= memorization.shards <= memorization.num_models:
        raise SpecError(
            f"{where}: memorization.shards: must be in [1, memorization.num_models={memorization.num_models}], "
            f"got {memorization.shards}"
        )


def _check_model(model, where: str) -> None:
    if isinstance(model, TiedDropoutOptions):
        try:
            check_options(model)
        except ValueError as error:
            raise SpecError(f"{where}: {error}") from None


def _check_method_setting(name: str, config, model, where: str) -> None:
    optimizer = getattr(config, "optimizer", None)
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise SpecError(f"{where}.hparams.optimizer: must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    needs_spare = getattr(METHODS.get(name), "needs_spare_channels", lambda: False)()
    if needs_spare and getattr(model, "generalisation", 1.0) >= 1:
        raise SpecError(
            f"{where}: {name} repairs through masks over spare channels, which this model has none of: set "
            "model.args.generalisation below 1 (example-tied dropout, or a half-capacity base model)"
        )


# Numbers that must be above zero: at zero or below a schedule trains nothing, a stream never yields a batch, an
# evaluation loop never evaluates or a mean divides by zero.
POSITIVE = {
    "train": ("epochs", "batch_size", "lr"),
    "relearn": ("epochs", "batch_size", "eval_every", "report_last", "lr"),
    "memorization": ("num_models",),
    "memorization.train": ("epochs", "batch_size", "lr"),
}


def _check_positive(spec: SweepSpec, where: str) -> None:
    for section, fields in POSITIVE.items():
        values = spec
        for part in section.split("."):
            values = getattr(values, part)
        for name in fields:
            if getattr(values, name) <= 0:
                raise SpecError(f"{where}: {section}.{name}: must be positive, got {getattr(values, name)}")


def _check_device(device: str, where: str) -> None:
    """The name only: whether the device is there is the executor's question (this machine's for `local`, checked
    before any job by app/run.py; the workers' on Ray, whose GPUs the driver's machine need not have)."""
    if device == "auto":
        return
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise SpecError(
            f"{where}: device: {device!r} is not a device torch knows (auto, cpu, cuda, cuda:N, mps)"
        ) from None
