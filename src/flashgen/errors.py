"""Exceptions whose message is meant for the user (the CLI prints it as one line, exit 2)."""


class UsageError(ValueError):
    """Bad input from the user; the message says how to fix it."""


class ModelLoadError(UsageError):
    """A model could not be found or loaded (missing, corrupt, unsafe or wrong-architecture)."""


class OutOfMemoryBudget(UsageError):
    """A request would not fit in the memory budget; refused before allocating."""


class NonFiniteOutput(RuntimeError):
    """The model produced NaN or infinite values."""
