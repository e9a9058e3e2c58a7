"""What the command modules share: the options and helpers of more than one command."""

from __future__ import annotations

import os
from pathlib import Path

import click

from hubtool.errors import LocalHubError, UsageError

DEFAULT_ASSETS_DIR = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hubtool" / "demo-assets"
)
DEFAULT_HUB_DIR = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / (
    "hubtool/hub"
)

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HUBTOOL_HUB_DIR",
    default=DEFAULT_HUB_DIR,
    show_default=True,
    show_envvar=True,
    help="Where the local Hub keeps its git repositories, LFS objects and database.",
)


def settings():
    from hubtool.core.hubclient import HubSettings

    return HubSettings.from_env()


def count(value: str | None) -> int | None:
    """'110M' -> 110_000_000."""
    if value is None:
        return None
    from hubtool.core.output import parse_count

    count = parse_count(value)
    if count is None:
        raise UsageError(f"Invalid count {value!r}.", "Use a number like 500000, 110M or 1.5B.")
    return count


def service(data_dir: Path):
    from hubtool.hub.service import HubService

    return open_service(lambda: HubService(data_dir), data_dir)


def open_service(make, data_dir: Path):
    try:
        return make()
    except OSError as exc:
        raise LocalHubError(
            f"Cannot use the local Hub at {data_dir}: {exc.strerror or exc}.",
            "Check the path and its permissions, or pick another --data-dir "
            "(or another --port if the address is taken).",
        ) from None
