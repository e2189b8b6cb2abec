"""The record's errors that a light reader raises too (no MLflow import)."""

from __future__ import annotations


class StoreError(LookupError):
    """What a command that reads or tidies the record cannot do with this store (no such store, experiment or
    sweep; no hard deletes through a tracking server): one line for the user."""
