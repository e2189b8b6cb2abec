"""The names the record is read by, in one light module (no MLflow import), so the commands that only read it load
nothing heavy: the `node_kind` of the runs that are not nodes, and the heartbeat that tells a live sweep from one
whose driver died (both windows can be moved by environment variables, as the fault tests do)."""

from __future__ import annotations

import os

SWEEP, LINK, RESULT = "sweep", "link", "result"  # node_kind of runs that are not nodes
HEARTBEAT = "heartbeat"  # tag: the time of the run's last sign of life
HEARTBEAT_SECONDS = float(os.environ.get("UNLEARN_SWEEP_HEARTBEAT_SECONDS", 10))
STALE_SECONDS = float(os.environ.get("UNLEARN_SWEEP_STALE_SECONDS", 60))  # silent this long: its driver is dead
