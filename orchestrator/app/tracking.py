"""Which MLflow store a command uses, decided in one place: `--tracking-uri`, then `$MLFLOW_TRACKING_URI`, then the
sweep file's `tracking.uri` (for `run` and `plan`), then the embedded default. A store that cannot be opened is bad
input, in one line naming where its URI came from, so the user knows what to fix."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from orchestrator.spec import SpecError
from orchestrator.spec.tracking import TrackingSpec

DEFAULT_URI = TrackingSpec.uri  # sqlite:///mlflow.db in the working directory, artifacts beside it
ENV = "MLFLOW_TRACKING_URI"


@dataclass(frozen=True)
class TrackingURI:
    uri: str
    source: str  # what named it, as the user would look for it


def tracking_uri(
    flag: Optional[str], sweep_file: Optional[str] = None, configured: Optional[str] = None
) -> TrackingURI:
    """The store's URI and where it came from; `configured` is the sweep file's `tracking.uri`."""
    if flag:
        return TrackingURI(flag, "--tracking-uri")
    if os.environ.get(ENV):
        return TrackingURI(os.environ[ENV], ENV)
    if configured is not None:
        return TrackingURI(configured, f"{sweep_file}: tracking.uri")
    return TrackingURI(DEFAULT_URI, "the default tracking URI")


def open_tracker(target: TrackingURI, tracking: TrackingSpec):
    """The store a sweep records into, created if it is new."""
    from mlflow.exceptions import MlflowException

    from orchestrator.track import StoreUnavailable, Tracker

    try:
        return Tracker(target.uri, tracking.experiment, tracking.artifact_location)
    except StoreUnavailable as error:
        raise SpecError(f"{target.source}: {error}") from None
    except (MlflowException, OSError) as error:
        raise SpecError(
            f"{target.source}: cannot use MLflow tracking store {target.uri}: {first_line(error)}"
        ) from None


def open_store(target: TrackingURI, experiment: str):
    """The store a reading command looks at, as it is: never created; a missing one is bad input."""
    from mlflow.exceptions import MlflowException

    from orchestrator.track import Store, StoreError, StoreUnavailable

    try:
        return Store.existing(target.uri, experiment)
    except (StoreError, StoreUnavailable) as error:
        raise SpecError(f"{target.source}: {error}") from None
    except (MlflowException, OSError) as error:
        raise SpecError(
            f"{target.source}: cannot use MLflow tracking store {target.uri}: {first_line(error)}"
        ) from None


def first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
