"""One exception family for edge-se.

Every error a user can cause is an :class:`EdgeSEError` subclass whose message says what was
expected, what was found and how to fix it. The command line prints the message on one line and
exits with the class's ``exit_code`` (documented in ``edge-se --help``):

==== ===============================================================
code meaning
==== ===============================================================
0    success
1    a check failed (numerics, accuracy, sha256, ...)
2    bad input or usage (file, shape, model name, option, bundle)
3    a needed optional dependency or device is missing
4    an unexpected internal error (a bug: please report it)
==== ===============================================================
"""

from __future__ import annotations


class EdgeSEError(Exception):
    """Base class: a user-facing error with a one-line, actionable message."""

    exit_code = 2


class InputError(EdgeSEError):
    """Bad user input: an option, a file, a shape, a spec."""


class ModelSpecError(InputError):
    """A model spec (zoo name, torchvision:/timm:/file.py:factory) could not be resolved."""


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable, refused by weights_only, or does not fit the model."""


class ImagesError(InputError):
    """An image or image folder is missing, empty, or unreadable."""


class BundleError(InputError):
    """A bundle folder or its manifest is missing, malformed, or refused."""


class UntrustedCodeError(BundleError):
    """A bundle would need code it names to be imported; the user must name or trust that code."""


class ExportError(EdgeSEError):
    """A model could not be traced, exported, simplified or checked."""


class CalibrationError(InputError):
    """A calibration spec or set is invalid or does not match the model."""


class CheckFailed(EdgeSEError):
    """A validation check failed (numerics, accuracy, integrity)."""

    exit_code = 1


class IntegrityError(CheckFailed):
    """An artifact's sha256 does not match its manifest."""


class ExecutionError(EdgeSEError):
    """An inference engine failed while running a valid input (TensorRT execution): not bad input."""

    exit_code = 4


class MissingDependencyError(EdgeSEError):
    """An optional extra (timm, tensorrt, ...) or a device (GPU) is not available."""

    exit_code = 3


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type name when empty), cut at ``limit`` characters."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if limit is None else line[:limit]


def missing_extra(package: str, extra: str, purpose: str) -> MissingDependencyError:
    """Build the standard error for a missing optional dependency."""
    return MissingDependencyError(
        f"{purpose} needs the optional package '{package}', which is not installed; "
        f"install it with: pip install 'edge-se[{extra}]'"
    )
