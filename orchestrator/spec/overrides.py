"""Profiles and key=value overrides, applied in command-line order to a sweep file's config: the typed one
`load_spec` builds, or the raw one a sweep's fingerprint reads."""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator.spec.errors import SpecError


def apply_overrides(config: DictConfig, overrides: list[str], path: Path) -> DictConfig:
    for override in overrides:
        if "=" in override:  # update, not merge: a path may index a list (methods.0.hparams.lr=0.01)
            key, text = override.split("=", 1)
            try:
                value = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]))["value"]
            except yaml.YAMLError as error:
                problem = str(getattr(error, "problem", None) or error).split("\n")[0]
                message = f"{path.name}: {key}: the override's value {text!r} is not valid YAML ({problem})"
                raise SpecError(message) from None
            try:
                OmegaConf.update(config, key, value, merge=True)
            except (OmegaConfBaseException, TypeError, ValueError) as error:  # a list indexed by name, ...
                problem = str(error).split("\n")[0]
                raise SpecError(f"{path.name}: {key}: the override cannot set this key ({problem})") from None
        elif override in config.get("profiles", {}):
            config = OmegaConf.merge(config, config.profiles[override])
        else:
            known = ", ".join(config.get("profiles", {})) or "none"
            raise SpecError(
                f"{path.name}: override {override!r}: expected key=value or a profile name (profiles: {known})"
            )
    return config
