"""hubtool's command line: parse options, call the library, print the result.

stdout carries data (URLs, tokens, tables); stderr carries talk. ``main`` is the one place
where errors become text and exit codes (see ``hubtool.errors``). The commands live in
``hubtool.cli``, one module per stage; each imports its library code only when run.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping

import click

from hubtool import __version__
from hubtool.cli import find, hub, release, train
from hubtool.core.output import runnable
from hubtool.errors import HubtoolError, render_error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubtool")
@click.option(
    "--debug",
    is_flag=True,
    help="Show tracebacks and debug logs (also HUBTOOL_DEBUG=1; 0, false or empty: off).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """hubtool: find a checkpoint, fine-tune it, document it, publish it on the Hugging Face Hub."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug = debug or bool(ctx.obj.get("debug"))
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


OFF = ("", "0", "false", "no", "off")


def debug_requested(argv: list[str], environ: Mapping[str, str]) -> bool:
    """The one debug switch: ``--debug`` or HUBTOOL_DEBUG set to anything but 0/false/empty."""
    return "--debug" in argv or environ.get("HUBTOOL_DEBUG", "").strip().lower() not in OFF


def main(argv: list[str] | None = None) -> None:
    debug = debug_requested(sys.argv[1:] if argv is None else argv, os.environ)
    try:
        cli.main(args=argv, prog_name="hubtool", standalone_mode=False, obj={"debug": debug})
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
        click.echo(runnable(render_error(exc)), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one paragraph, the traceback only with --debug
        if debug:
            traceback.print_exc()
        click.echo(
            f"Error: hubtool failed unexpectedly ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}).\nHint: this is a bug in hubtool; run again "
            "with --debug for the traceback and report it.",
            err=True,
        )
        sys.exit(1)
    sys.exit(0)
