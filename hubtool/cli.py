"""hubtool's command line: parse options, call the library, print the result.

stdout carries data (URLs, tokens, tables); stderr carries talk. ``main`` is the one place
where errors become text and exit codes (see ``hubtool.errors``). The commands live in
``hubtool.commands``, one module per stage; each imports its library code only when run.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from hubtool import __version__
from hubtool.commands import find, hub, release, train
from hubtool.errors import HubtoolError, render_error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubtool")
@click.option(
    "--debug", is_flag=True, envvar="HUBTOOL_DEBUG", help="Show tracebacks and debug logs."
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """hubtool: find a checkpoint, fine-tune it, document it, publish it on the Hugging Face Hub."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")


for command in (
    hub.hub,
    find.search_command,
    find.info_command,
    train.finetune_command,
    train.evaluate_command,
    release.card_command,
    release.push_command,
    release.publish_command,
    release.ci_group,
    train.demo_command,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv or sys.argv[1:]) or bool(os.environ.get("HUBTOOL_DEBUG"))
    try:
        cli.main(args=argv, prog_name="hubtool", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except HubtoolError as exc:
        if debug:
            traceback.print_exc()
        click.echo(render_error(exc), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(0)
