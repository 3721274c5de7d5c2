"""User-facing errors: the CLI prints them as one line and exits with the attached code."""

from __future__ import annotations


class DeepDenoiseError(Exception):
    """An error caused by the user's input or environment, not by a bug."""

    exit_code = 2


class InputError(DeepDenoiseError):
    """The input file or array cannot be read or is not a valid image."""

    exit_code = 3


class OutputError(DeepDenoiseError):
    """The output cannot be written (exists, unwritable, unsupported format)."""

    exit_code = 4


class ModelError(DeepDenoiseError):
    """A model name or weight file cannot be resolved or loaded."""

    exit_code = 5


class ModelConfigError(ModelError, ValueError):
    """A model preset, architecture or config value that does not exist or does not fit it.

    Also a ValueError, so library code that builds models can catch it the usual way."""


class Cancelled(DeepDenoiseError):
    """The caller gave up on the work (a web client hung up): stopped between tiles."""

    exit_code = 130
