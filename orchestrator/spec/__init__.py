"""Stage 1, the sweep file: its schema, loading (`base:`, profiles, key=value overrides), method defaults and
grids, and validation that names the offending file and key before any job starts; and its fingerprint, which a
re-run computes without importing torch (`fingerprint.py`).

Names are imported from their modules when first used (PEP 562), so that a light module of this stage loads
without the schema, whose defaults come from the torch workloads."""

from orchestrator.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "orchestrator.spec.errors": ("SpecError", "checked"),
        "orchestrator.spec.files": ("CONFIG_DIR",),
        "orchestrator.spec.load": ("LoadedSweep", "load_spec", "load_sweep"),
        "orchestrator.spec.defaults": ("changed_hparams", "method_defaults"),
        "orchestrator.spec.methods": ("MethodSetting", "check_method_name", "expand_method"),
        "orchestrator.spec.schema": (
            "Component",
            "CorruptionKindSpec",
            "CorruptionSpec",
            "DatasetSpec",
            "MethodSpec",
            "RelearnSpec",
            "SearchSpec",
            "SweepSpec",
            "TrackingSpec",
        ),
        "workloads.config": ("as_dict",),
    },
)
