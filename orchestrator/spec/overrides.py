"""Profiles and key=value overrides, applied in command-line order to a sweep file's config: the typed one
`load_spec` builds, or the raw one a sweep's fingerprint reads."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from orchestrator.spec.errors import SpecError


def apply_overrides(config: DictConfig, overrides: list[str], path: Path) -> DictConfig:
    for override in overrides:
        if "=" in override:  # update, not merge: a path may index a list (methods.0.hparams.lr=0.01)
            key, text = override.split("=", 1)
            value = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]))["value"]
            OmegaConf.update(config, key, value, merge=True)
        elif override in config.get("profiles", {}):
            config = OmegaConf.merge(config, config.profiles[override])
        else:
            known = ", ".join(config.get("profiles", {})) or "none"
            raise SpecError(
                f"{path.name}: override {override!r}: expected key=value or a profile name (profiles: {known})"
            )
    return config
