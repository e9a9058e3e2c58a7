"""hubtool's one exception tree.

    HubtoolError                 exit 1   anything hubtool expected could go wrong
    ├── UsageError               exit 2   bad option values, bad files given on the command line
    ├── ConfigError              exit 2   a configuration file that cannot be used
    ├── HubConnectionError       exit 3   the Hub (or the local Hub) cannot be reached
    ├── HubAuthError             exit 4   a missing, wrong or read-only token
    ├── NotFoundError            exit 5   a repo, user, revision or file that does not exist
    ├── LocalHubError            exit 6   the local Hub's data directory or server cannot be used
    ├── CheckFailed              exit 7   a card (or a push's metadata) fails its checks
    ├── GateFailed               exit 8   a release requirement (accuracy>=0.9) is not met
    ├── TrainingFailed           exit 9   training cannot go on (a non-finite loss or metric)
    └── StorageError             exit 10  a write failed: disk full, read-only, not a folder

Library code raises these with a message (what happened) and a hint (what to do next).
``render_error`` in this module is the one place that turns them into text; the CLI
prints that text on stderr and exits with ``exit_code``.
"""

from __future__ import annotations


class HubtoolError(Exception):
    """An error hubtool expected: shown as one paragraph, no traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(HubtoolError):
    exit_code = 2


class ConfigError(HubtoolError):
    exit_code = 2


class HubConnectionError(HubtoolError):
    exit_code = 3


class HubAuthError(HubtoolError):
    exit_code = 4


class NotFoundError(HubtoolError):
    exit_code = 5


class LocalHubError(HubtoolError):
    exit_code = 6


class CheckFailed(HubtoolError):
    exit_code = 7


class GateFailed(HubtoolError):
    exit_code = 8


def render_error(err: HubtoolError) -> str:
    """The stderr text for an error: ``Error: message`` then an optional ``Hint:`` line."""
    text = f"Error: {err.message.rstrip()}"
    if err.hint:
        text += f"\nHint: {err.hint.rstrip()}"
    return text


class TrainingFailed(HubtoolError):
    exit_code = 9


class StorageError(HubtoolError):
    exit_code = 10
