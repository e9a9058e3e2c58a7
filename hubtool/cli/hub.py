"""`hubtool hub …`: run and administer the local Hub."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hubtool.cli.options import data_dir_option, open_service, service
from hubtool.core.output import out
from hubtool.core.rundir import write_text
from hubtool.errors import UsageError


@click.group()
def hub() -> None:
    """The local Hub: a Hugging Face Hub-compatible server for offline work and CI.

    Point any Hugging Face client at it with HF_ENDPOINT=<url it prints>.
    """


def _size(value: str) -> int:
    from hubtool.hub.limits import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@hub.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one.",
)
@click.option(
    "--url-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the endpoint URL to this file (for scripts).",
)
@click.option(
    "--public-url",
    help="The URL clients use, for the URLs the Hub returns (default: http://HOST:PORT).",
)
@click.option(
    "--workers",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Requests served at once.",
)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a request body (or an answer) may stall.",
)
@click.option(
    "--max-lfs-object",
    default="50G",
    show_default=True,
    callback=lambda _ctx, _param, value: _size(value),
    help="Largest LFS object accepted, in bytes (binary k, M, G, T suffixes).",
)
@data_dir_option
def hub_serve(
    host: str,
    port: int,
    url_file: Path | None,
    public_url: str | None,
    workers: int,
    body_timeout: float,
    max_lfs_object: int,
    data_dir: Path,
) -> None:
    """Serve the local Hub until interrupted (Ctrl-C or SIGTERM)."""
    from hubtool.hub.limits import HubLimits
    from hubtool.hub.server import make_server, serve_forever

    limits = HubLimits(workers=workers, body_timeout=body_timeout, max_lfs_object=max_lfs_object)
    server = open_service(lambda: make_server(data_dir, host, port, limits, public_url), data_dir)
    out.result(server.url)
    if url_file is not None:
        write_text(url_file, server.url + "\n")
    out.note(
        f"Local Hub at {server.url} (data in {data_dir}); "
        f"use it with: export HF_ENDPOINT={server.url}"
    )
    sys.stdout.flush()
    serve_forever(server)
    out.note("Local Hub stopped.")


@hub.command("gc")
@click.option("--dry-run", is_flag=True, help="Report only; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@data_dir_option
def hub_gc(dry_run: bool, as_json: bool, data_dir: Path) -> None:
    """Show the data directory's space and remove temporaries left by interrupted writes."""
    from hubtool.core.output import size, table
    from hubtool.hub import storage

    before = storage.usage(data_dir)
    done = storage.reclaim(data_dir, dry_run=dry_run)
    if as_json:
        reclaimed = {"bytes": done.bytes, "count": done.count, "kept": done.kept}
        out.json({**before.as_dict(), "reclaimed": reclaimed, "dry_run": dry_run})
        return
    rows = [
        ["repos", size(before.repos), f"{before.repo_count} repositories"],
        ["lfs", size(before.lfs), f"{before.lfs_objects} objects"],
        ["temporaries", size(before.temporaries), f"{before.temporary_count} files"],
        ["database", size(before.database), ""],
        ["total", size(before.total), ""],
    ]
    out.result(table(["part", "size", "count"], rows, [12, 10, 20], [False, True, False]))
    verb = "Would reclaim" if dry_run else "Reclaimed"
    kept = f"; kept {len(done.kept)} in use" if done.kept else ""
    out.note(f"{verb} {size(done.bytes)} ({done.count} temporaries){kept}.")


@hub.group("user")
def hub_user() -> None:
    """Manage the local Hub's users."""


@hub_user.command("add")
@click.argument("name")
@click.option("--fullname", help="Display name (default: NAME).")
@click.option("--email", help="E-mail address shown by whoami.")
@data_dir_option
def hub_user_add(name: str, fullname: str | None, email: str | None, data_dir: Path) -> None:
    """Add a user named NAME (its namespace is NAME)."""
    service(data_dir).add_user(name, fullname, email)
    out.note(f"Added user {name}.")


@hub.group("org")
def hub_org() -> None:
    """Manage the local Hub's organizations."""


@hub_org.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, help="A user who may write to NAME/…")
@click.option(
    "--private-by-default",
    is_flag=True,
    help="Repos created in NAME are private unless asked public (as an Enterprise org's).",
)
@data_dir_option
def hub_org_add(
    name: str, members: tuple[str, ...], private_by_default: bool, data_dir: Path
) -> None:
    """Add an organization NAME, optionally with members."""
    svc = service(data_dir)
    svc.add_user(name, is_org=True, private_by_default=private_by_default)
    for member in members:
        svc.add_member(name, member)
    out.note(f"Added organization {name}.")


@hub.group("token")
def hub_token() -> None:
    """Manage access tokens."""


@hub_token.command("create")
@click.argument("user")
@click.option("--write", is_flag=True, help="Allow writes (default: read-only).")
@click.option("--name", "label", help="The token's display name.")
@data_dir_option
def hub_token_create(user: str, write: bool, label: str | None, data_dir: Path) -> None:
    """Create a token for USER and print it once (only its hash is stored)."""
    token = service(data_dir).create_token(user, write, label)
    out.result(token)
    out.note("This token is shown once; keep it secret (e.g. in HF_TOKEN).")


@hub.command("import-catalog")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_dir_option
def hub_import_catalog(file: Path, data_dir: Path) -> None:
    """Load Hub listing rows (JSONL, JSONL.gz or CSV) as metadata-only model repos."""
    from hubtool.hub.catalog import import_catalog

    try:
        imported, skipped = import_catalog(service(data_dir), file)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise UsageError(
            f"Cannot import {file}: {exc}",
            "Give a JSON-lines file (optionally .gz) or a CSV export.",
        ) from None
    out.note(f"Imported {imported} rows from {file} ({skipped} skipped).")
