"""Which MLflow store a command uses, decided in one place: `--tracking-uri`, then `$MLFLOW_TRACKING_URI`, then the
sweep file's `tracking.uri` (for `run` and `plan`), then the embedded default. A store that cannot be opened is bad
input, in one line naming where its URI came from, so the user knows what to fix; so is, for `run` as a Ray Job's
entrypoint, a store or artifact folder inside the job's working directory, which Ray deletes with its session."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from orchestrator.spec import SpecError
from orchestrator.spec.tracking import TrackingSpec
from orchestrator.track.locations import ray_job_folder, vanishes

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


def refuse_a_store_that_vanishes(target: TrackingURI, tracking: TrackingSpec, sweep_file: str) -> None:
    """In a Ray Job run from Ray's copy of its working directory: SpecError (exit 2, before any job) when the store or
    the folder a new experiment would keep its artifacts in is there, saying what to pass instead."""
    job = ray_job_folder()
    if job is None:
        return
    gone = f"is in this Ray Job's working directory ({job}), which Ray deletes with its session, and the runs, "
    gone += "checkpoints and report would go with it"
    if vanishes(target.uri, job):
        raise SpecError(
            f"{target.source}: {target.uri} {gone}. Pass a store that outlives the job: --tracking-uri "
            "sqlite:////ABSOLUTE/PATH/mlflow.db (a folder on the head node outside the working directory; checkpoints "
            "go beside it) or --tracking-uri http://MLFLOW-SERVER:5000"
        )
    if tracking.artifact_location is not None and vanishes(tracking.artifact_location, job):
        raise SpecError(
            f"{sweep_file}: tracking.artifact_location: {tracking.artifact_location} {gone}. Give an absolute folder "
            "outside it, or s3://BUCKET/PREFIX, or leave it out (checkpoints then go beside a sqlite store)"
        )


def outputs_that_vanish(*paths) -> Optional[str]:
    """A note for local outputs (summary.json, report/) written inside a Ray Job's working directory: they go with
    Ray's session, and the sweep's run in the store keeps both."""
    job = ray_job_folder()
    lost = [str(path) for path in paths if path is not None and vanishes(str(path), job)] if job else []
    if not lost:
        return None
    return (
        f"{' and '.join(lost)} are written in this Ray Job's working directory, which Ray deletes with its session; "
        "the sweep's run keeps both (`unlearn-sweep report SWEEP_ID` writes them anywhere), or pass --summary "
        "/ABSOLUTE/PATH/summary.json"
    )


def open_tracker(target: TrackingURI, tracking: TrackingSpec):
    """The store a sweep records into, created if it is new."""
    from mlflow.exceptions import MlflowException

    from orchestrator.track import StoreError, StoreUnavailable, Tracker

    try:
        return Tracker(target.uri, tracking.experiment, tracking.artifact_location)
    except (StoreUnavailable, StoreError) as error:
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


def open_record(target: TrackingURI, experiment: str):
    """What a reading command asks its questions of (sweeps, a sweep's summary, stored results per kind): a sqlite file
    on this machine whose artifacts are too is read directly, without importing MLflow (track/sqlite_record.py); any
    other store through MLflow (track/stored_sweeps.py). A missing store or experiment is bad input, as open_store."""
    from orchestrator.track.errors import StoreError
    from orchestrator.track.locations import local_path

    if target.uri.startswith("sqlite:///") and "?" not in target.uri:
        import sqlite3

        from orchestrator.track.sqlite_record import SqliteRecord

        try:
            record = SqliteRecord(local_path(target.uri), experiment)
        except StoreError as error:
            raise SpecError(f"{target.source}: {error}") from None
        except sqlite3.Error:
            record = None  # not a store this reading understands: MLflow says what it is
        if record is not None and str(record.artifact_location).startswith("file://"):
            return record
        if record is not None:
            record.db.close()
    from orchestrator.track.stored_sweeps import MlflowRecord

    return MlflowRecord(open_store(target, experiment))


def first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
