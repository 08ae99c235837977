"""Every fatal error footprint reports, each with its exit code.

Messages read as: what happened — why — what to do. Only cli.main() turns them into exits.
"""

from __future__ import annotations

# Exit codes, documented once here and in the README.
EXIT_OK = 0
EXIT_VERDICT = 1  # a negative verdict: budget exceeded, a run that failed under its limit
EXIT_USAGE = 2
EXIT_BAD_IMAGE = 3
EXIT_ENVIRONMENT = 4
EXIT_MERGE_CONFLICT = 5  # merge: documents that cannot stand side by side in one matrix
EXIT_INTERNAL = 70  # a bug in footprint
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class FootprintError(Exception):
    """Base of all errors footprint reports to its user."""

    exit_code = EXIT_VERDICT


class UsageError(FootprintError):
    """The command was asked for something it cannot mean."""

    exit_code = EXIT_USAGE


class BadImage(FootprintError):
    """The image is malformed, truncated, or not one the kernel would unpack."""

    exit_code = EXIT_BAD_IMAGE

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.detail, self.offset = message, offset
        super().__init__(message if offset is None else f"{message} (at byte {offset})")


class BadDocument(FootprintError):
    """A JSON document (a saved profile, a result) that footprint cannot read back."""

    exit_code = EXIT_BAD_IMAGE


class UnsupportedCodec(BadImage):
    """A compression the kernel knows but this machine cannot decompress."""


class EnvironmentUnavailable(FootprintError):
    """This machine cannot do what was asked (not root, no cgroup, no qemu, no kernel)."""

    exit_code = EXIT_ENVIRONMENT


class MergeConflict(FootprintError):
    """Result documents that cannot be merged into one matrix: two on the same axes, two that
    name one image (or kernel) but hold different ones, or different schema versions."""

    exit_code = EXIT_MERGE_CONFLICT


class UnsafeExtraction(FootprintError):
    """Extraction was refused before anything was written (e.g. a non-empty target)."""

    exit_code = EXIT_USAGE


class Terminated(BaseException):
    """SIGTERM, raised as an exception so that every cleanup on the way out runs."""

    exit_code = EXIT_TERMINATED
