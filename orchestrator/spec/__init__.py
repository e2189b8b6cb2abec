"""Stage 1, the sweep file: its schema, loading (`base:`, profiles, key=value overrides), method defaults and
grids, and validation that names the offending file and key before any job starts."""
from orchestrator.spec.errors import SpecError, checked
from orchestrator.spec.files import CONFIG_DIR
from orchestrator.spec.load import load_spec
from orchestrator.spec.methods import MethodSetting, changed_hparams, check_method_name, expand_method, method_defaults
from orchestrator.spec.schema import (Component, CorruptionKindSpec, CorruptionSpec, DatasetSpec, MethodSpec, RelearnSpec, SearchSpec,
                                      SweepSpec, TrackingSpec)
from workloads.config import as_dict

__all__ = ["CONFIG_DIR", "Component", "CorruptionKindSpec", "CorruptionSpec", "DatasetSpec", "MethodSetting", "MethodSpec", "RelearnSpec", "SearchSpec", "SpecError",
           "SweepSpec", "TrackingSpec", "as_dict", "changed_hparams", "check_method_name", "checked", "expand_method",
           "load_spec", "method_defaults"]
