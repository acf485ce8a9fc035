"""Exceptions whose message is meant for the user (the CLI prints it as one line: exit 2 for bad
input, 130 for an interrupted run)."""


class UsageError(ValueError):
    """Bad input from the user; the message says how to fix it."""


class ModelLoadError(UsageError):
    """A model could not be found or loaded (missing, corrupt, unsafe or wrong-architecture)."""


class OutOfMemoryBudget(UsageError):
    """A request would not fit in the memory budget; refused before allocating."""


class NonFiniteOutput(RuntimeError):
    """The model produced NaN or infinite values."""


class Interrupted(RuntimeError):
    """A training run (or a recipe's stage) stopped on SIGTERM/SIGINT after saving a checkpoint:
    the same command with --resume continues it."""
