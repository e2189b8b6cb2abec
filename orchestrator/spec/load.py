"""A sweep file (and the file it starts from with `base:`), then named profiles and key=value overrides in
command-line order, typed against the schema and validated: the `SweepSpec` every later stage reads."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator.spec.errors import SpecError, checked
from orchestrator.spec.files import load_with_base, sweep_file
from orchestrator.spec.schema import SweepSpec
from orchestrator.spec.validate import validate
from workloads.config import omegaconf_message


def load_spec(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    path = sweep_file(path)
    raw = load_with_base(path)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SweepSpec), raw)
        for override in overrides:
            if "=" in override:  # update, not merge: a path may index a list (methods.0.hparams.lr=0.01)
                key, text = override.split("=", 1)
                value = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={text}"]))["value"]
                OmegaConf.update(merged, key, value, merge=True)
            elif override in merged.profiles:
                merged = OmegaConf.merge(merged, merged.profiles[override])
            else:
                known = ", ".join(merged.profiles) or "none"
                raise SpecError(f"{path.name}: override {override!r}: expected key=value or a profile name (profiles: {known})")
    except OmegaConfBaseException as error:
        raise SpecError(omegaconf_message(error, path.name)) from None
    spec = checked(SweepSpec, merged, path.name)
    validate(spec, path.name)
    return spec
