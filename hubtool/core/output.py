"""Terminal output: compact numbers, tables that fit the terminal, a spinner, and the one
way talk reaches the user: ``note`` and ``warn`` (on stderr, each on its own line, above a
progress bar), with every `hubtool …` command written so that it runs as printed."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path


def human(n: int | float | None, unit: str = "") -> str:
    """1234567 -> '1.2M'; None -> '-'."""
    if n is None:
        return "-"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f}{suffix}{unit}" if value < 10 else f"{value:.0f}{suffix}{unit}"
    return f"{n:.0f}{unit}" if isinstance(n, float) else f"{n}{unit}"


def parse_count(text: str) -> int | None:
    """'110M' -> 110_000_000, '1.5B', '10k', '500000'; None when it is not a count."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMbBtT]?)", text.strip())
    if not m:
        return None
    scale = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def size(n: int | None) -> str:
    if n is None:
        return "-"
    for step, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= step:
            return f"{n / step:.1f} {suffix}"
    return f"{n} B"


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[int],
    right: Sequence[bool] | None = None,
) -> str:
    """Fixed-width columns (values clipped), two spaces apart."""
    right = right or [False] * len(headers)

    def line(cells: Sequence[str]) -> str:
        parts = []
        for cell, width, r in zip(cells, widths, right, strict=True):
            cell = clip(cell, width)
            parts.append(cell.rjust(width) if r else cell.ljust(width))
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


@contextmanager
def spinner(message: str, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr while the block runs (only on a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    stop = threading.Event()

    def spin() -> None:
        for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            if stop.wait(0.1):
                break
            sys.stderr.write(f"\r{frame} {message}")
            sys.stderr.flush()
        sys.stderr.write("\r" + " " * (len(message) + 2) + "\r")
        sys.stderr.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def terminal_width() -> int:
    """The terminal's width; 80 when stdout is not a terminal."""
    if not sys.stdout.isatty():
        return 80
    return max(shutil.get_terminal_size((80, 24)).columns, 40)


@cache
def invocation() -> str:
    """How the user runs this hubtool: ``hubtool`` when that is on PATH and is this one,
    else this environment's script (``.venv/bin/hubtool``), else ``python -m hubtool``."""
    script = Path(sys.executable).parent / "hubtool"
    found = shutil.which("hubtool")
    if found and (not script.exists() or os.path.samefile(found, script)):
        return "hubtool"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m hubtool"
    try:
        return shlex.quote(str(script.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(script))


COMMAND = re.compile(r"`hubtool(?= |`)")


def runnable(text: str) -> str:
    """Text whose `hubtool …` commands run as printed where hubtool is not on PATH."""
    name = invocation()
    return text if name == "hubtool" else COMMAND.sub(f"`{name}", text)


class Output:
    """The one way a command talks: ``result`` (a line of data) and ``json`` (a document) on
    stdout; ``note`` and ``warn`` on stderr, each on its own line above a progress bar, with
    every `hubtool …` command written so that it runs as printed. Like the ``hf`` CLI's
    ``out``: commands and library code use the module's ``out``."""

    def result(self, text: str) -> None:
        """Data for the user or a script (a path, a URL, a table), on stdout."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def json(self, document: object) -> None:
        """A machine-readable document on stdout (``--json``)."""
        import json

        self.result(json.dumps(document, indent=2, ensure_ascii=False, default=str))

    def note(self, message: str) -> None:
        """Talk on stderr, on its own line even while a progress bar is drawn."""
        from tqdm.auto import tqdm

        tqdm.write(runnable(message), file=sys.stderr)

    def warn(self, message: str) -> None:
        """A warning the user can act on: ``Warning: …`` on its own line of stderr."""
        self.note(f"Warning: {message}")


out = Output()
note = out.note
warn = out.warn
