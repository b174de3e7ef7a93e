"""Exceptions whose message is meant for the user: what was wrong and what is accepted."""


class PQCError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class ConfigError(PQCError, ValueError):
    """A configuration value, key or combination is not accepted."""


class RegistryError(PQCError, KeyError):
    """An unknown model, dataset or other registered name."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not
        return str(self.args[0]) if self.args else ""


class DataError(PQCError):
    """A dataset path is missing or its contents are malformed."""


class CheckpointError(PQCError):
    """A checkpoint or run directory cannot be used to resume."""


class DivergedError(PQCError):
    """Training diverged: the loss or the weights became NaN/inf."""


class ModelError(PQCError):
    """A model cannot be built here: a missing optional package or weights file."""


class BusyError(PQCError):
    """A run directory or sweep point is being written by another process."""


class StorageError(PQCError, OSError):
    """A file could not be written (a full disk, no permission); what was there is kept."""


class ShrinkError(PQCError):
    """A model cannot be shrunk to its kept channels without changing its outputs."""


class TrainingProcessError(PQCError):
    """One of several training processes died or stopped answering (finished epochs stay)."""
