"""The worst-case forget set's selection settings (`forget.criterion: worst_case`): the defaults file
configs/selection/worst_case.yaml (the reference's), the sweep's `worst_case:` section over it, typed once by the
workload's `WorstCaseConfig`."""

from __future__ import annotations

import functools

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator.spec.errors import SpecError
from orchestrator.spec.files import CONFIG_DIR, load_with_base
from workloads.config import ConfigError, typed
from workloads.selection import WorstCaseConfig

DEFAULTS = CONFIG_DIR / "selection" / "worst_case.yaml"


@functools.cache
def _defaults() -> dict:
    return OmegaConf.to_container(load_with_base(DEFAULTS, "selection defaults file"), resolve=True)


def worst_case_config(overrides: dict, where: str = "") -> WorstCaseConfig:
    """The selection's settings: the defaults file with the sweep's `worst_case:` section over it."""
    try:
        merged = OmegaConf.merge(_defaults(), overrides)
    except OmegaConfBaseException as error:  # an override of the wrong shape
        raise SpecError(f"{where}worst_case: {error}") from None
    try:
        return typed(WorstCaseConfig, merged, f"{where}worst_case")
    except ConfigError as error:  # a check of the config's own (`__post_init__`) names the field alone
        message = str(error)
        raise SpecError(message if message.startswith(where) else f"{where}worst_case.{message}") from None
