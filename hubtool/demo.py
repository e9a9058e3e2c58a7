"""``hubtool demo``: the local Hub end to end, offline and without an account.

Starts a local Hub, publishes a tiny masked-LM (model, tokenizer, card) with the real
``transformers``/``huggingface_hub`` clients, then shows it listed, loaded back and cloned
with git. Safe to run again: the repo is updated in place.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from hubtool.errors import HubtoolError

DEMO_USER = "demo"
REPO = f"{DEMO_USER}/tiny-bert-fr"
VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "le",
    "la",
    "de",
    "chat",
    "chien",
    "mange",
    "dort",
    "maison",
    "paris",
    "est",
    "capitale",
    "france",
    ".",
]
CARD = """---
language: fr
license: apache-2.0
library_name: transformers
pipeline_tag: fill-mask
tags: [hubtool-demo]
---
# tiny-bert-fr

A two-layer BERT with an 18-word French vocabulary, initialised at random by `hubtool demo`
to show the local Hub working end to end. It has not been trained: its predictions mean nothing.
"""


def run_demo(workdir: Path, echo: Callable[[str], None]) -> None:
    from hubtool.hub.server import BackgroundHub

    workdir = workdir.resolve()
    with BackgroundHub(workdir / "hub") as hub:
        token = _demo_token(hub.service)
        # The Hugging Face clients read these when first imported, so set them first.
        os.environ.update(
            HF_ENDPOINT=hub.url,
            HF_TOKEN=token,
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HOME=str(workdir / "hf_home"),
            TOKENIZERS_PARALLELISM="false",
        )
        echo(f"1/4 Local Hub running at {hub.url} (data in {workdir / 'hub'})")
        _publish(echo)
        _show_listed(echo)
        _load_back(echo)
        _clone(hub.url, workdir, echo)
    echo(
        "Done: the local Hub served the real clients end to end. "
        f"Run `hubtool hub serve --data-dir {workdir / 'hub'}` to browse it again."
    )


def _demo_token(service) -> str:
    if service.db.get_user(DEMO_USER) is None:
        service.add_user(DEMO_USER, "hubtool demo")
    return service.create_token(DEMO_USER, write=True, name="demo")


def _publish(echo: Callable[[str], None]) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizer

    echo(f"2/4 Publishing {REPO} with transformers' push_to_hub")
    # transformers 5 takes the vocabulary itself (a vocab_file argument is silently ignored)
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(VOCAB)}, do_lower_case=True)
    if len(tokenizer) != len(VOCAB):
        raise HubtoolError(f"The demo tokenizer has {len(tokenizer)} tokens, not {len(VOCAB)}.")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = BertForMaskedLM(config)
    model.push_to_hub(REPO, commit_message="Add tiny-bert-fr weights")  # type: ignore[arg-type]
    tokenizer.push_to_hub(REPO, commit_message="Add tokenizer")
    from huggingface_hub import HfApi

    HfApi().upload_file(
        path_or_fileobj=CARD.encode(),
        path_in_repo="README.md",
        repo_id=REPO,
        commit_message="Add model card",
    )


def _show_listed(echo: Callable[[str], None]) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    echo("3/4 Listed: list_models(filter=['fr', 'fill-mask'])")
    for m in api.list_models(filter=["fr", "fill-mask"], full=True):
        info = api.model_info(m.id)
        params = info.safetensors.total if info.safetensors else "?"
        echo(
            f"    {m.id:<24} {m.pipeline_tag:<10} params={params}  "
            f"files={len(m.siblings or [])}  tags={', '.join((info.tags or [])[:6])}, …"
        )
    commits = api.list_repo_commits(REPO)
    echo(f"    {len(commits)} commits, newest: {commits[0].title!r} ({commits[0].commit_id[:8]})")


def _load_back(echo: Callable[[str], None]) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(REPO).eval()
    tokenizer = AutoTokenizer.from_pretrained(REPO)
    batch = tokenizer("paris est la [MASK] de la france .", return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    mask_at = batch["input_ids"][0].tolist().index(tokenizer.mask_token_id)
    guess = tokenizer.convert_ids_to_tokens(int(logits[0, mask_at].argmax()))
    echo(
        f"    loaded back with AutoModelForMaskedLM.from_pretrained({REPO!r}): "
        f"logits {tuple(logits.shape)}, untrained guess for [MASK]: {guess!r}"
    )


def _clone(url: str, workdir: Path, echo: Callable[[str], None]) -> None:
    dest = workdir / "clone"
    shutil.rmtree(dest, ignore_errors=True)
    lfs = shutil.which("git-lfs") is not None
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if not lfs:
        env["GIT_LFS_SKIP_SMUDGE"] = "1"
    proc = subprocess.run(
        ["git", "clone", "-q", f"{url}/{REPO}", str(dest)], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise HubtoolError(
            f"git clone of {REPO} failed: {proc.stderr.strip()}", "Check that git is installed."
        )
    weights = dest / "model.safetensors"
    echo(f"4/4 Cloned with git into {dest}: {', '.join(sorted(os.listdir(dest)))}")
    if lfs:
        echo(f"    model.safetensors arrived through git-lfs: {weights.stat().st_size:,} bytes")
    else:
        echo("    git-lfs is not installed, so LFS files are pointers in the clone")
