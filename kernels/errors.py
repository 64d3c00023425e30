"""The suite's own exceptions: vendor errors are wrapped once into these, with a message a user can act on."""

from __future__ import annotations

__all__ = ["AccessBenchError", "InvalidIds", "InvalidOptions", "StoreError", "StrategyUnavailable"]


class AccessBenchError(Exception):
    """Base class of every error the suite raises on purpose; the CLI prints its message as one line."""


class StrategyUnavailable(AccessBenchError):
    """The strategy cannot run on this machine; the message names what is missing (never a silent fallback)."""


class InvalidOptions(AccessBenchError, ValueError):
    """Unknown strategy name, unknown option or a bad option value; the message lists the valid choices."""


class InvalidIds(AccessBenchError, IndexError):
    """Node ids out of range or of the wrong type."""


class StoreError(AccessBenchError):
    """A graph store that is missing, truncated, mismatched or corrupt."""
