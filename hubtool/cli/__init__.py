"""The command line: the group and ``main`` (errors become messages here), shared option
builders, one module per command group, and the human-readable renderings."""

from hubtool.cli.main import cli, main

__all__ = ["cli", "main"]
