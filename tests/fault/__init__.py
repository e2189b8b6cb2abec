"""Faults injected into real sweeps: signals, killed drivers and workers, a tracking server that goes away, storage
that corrupts or refuses bytes. Each test states what survived and that nothing finished was lost (RELIABILITY.md)."""
