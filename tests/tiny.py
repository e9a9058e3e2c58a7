"""Tiny checkpoints and data sets built in the test session (no downloads)."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "the cat dog sat on mat ran fast slow happy sad good bad movie film great awful "
    "paris london berlin city river alice bob carol met in"
).split()
PEOPLE = ("alice", "bob", "carol")
PLACES = ("paris", "london", "berlin")
POSITIVE = {"happy", "good", "great"}


def texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) for _ in range(n)]


def build_checkpoint(
    folder: Path, kind: str = "bert", extra_words: list[str] = (), weights: bool = True
) -> Path:
    """A 2-layer model with its sub-word tokenizer trained on the tiny vocabulary (with
    ``weights=False`` only its config and tokenizer, for ``--from-scratch`` runs)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, RobertaConfig, RobertaForMaskedLM

    from hubtool.training.subwords import train_tokenizer

    fast = train_tokenizer(texts(400) + list(WORDS) + list(extra_words) * 5, 150, 64)
    common = {
        "vocab_size": len(fast),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    torch.manual_seed(0)
    if kind == "roberta":
        model = RobertaForMaskedLM(
            RobertaConfig(**common, max_position_embeddings=66, pad_token_id=0)
        )
    else:
        model = BertForMaskedLM(BertConfig(**common, max_position_embeddings=64))
    if weights:
        model.save_pretrained(folder)
    else:
        model.config.architectures = [type(model).__name__]
        model.config.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def classification_rows(n: int, seed: int = 0) -> list[dict]:
    return [
        {"text": t, "label": "pos" if POSITIVE & set(t.split()) else "neg"} for t in texts(n, seed)
    ]


def pair_rows(n: int, seed: int = 0) -> list[dict]:
    """Two sentences; label 1 when they share their first word (a learnable relation)."""
    a, b = texts(n, seed), texts(n, seed + 1)
    rows = []
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if i % 2:
            y = x.split()[0] + " " + y
        rows.append({"sentence1": x, "sentence2": y, "label": int(x.split()[0] == y.split()[0])})
    return rows


def token_rows(n: int, seed: int = 0) -> list[dict]:
    rows = []
    for t in texts(n, seed):
        tokens = t.split()
        tags = ["B-PER" if w in PEOPLE else "B-LOC" if w in PLACES else "O" for w in tokens]
        rows.append({"tokens": tokens, "ner_tags": tags})
    return rows


MULTI_LABELS = {"animal": {"cat", "dog"}, "place": PLACES, "feeling": {"happy", "sad"}}


def multi_label_rows(n: int, seed: int = 0) -> list[dict]:
    """Several labels per text (none, one or more): which word groups the text mentions."""
    return [
        {
            "text": t,
            "labels": [k for k, words in MULTI_LABELS.items() if set(words) & set(t.split())],
        }
        for t in texts(n, seed)
    ]
