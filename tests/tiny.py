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
    folder: Path,
    kind: str = "bert",
    extra_words: list[str] = (),
    weights: bool = True,
    width: int = 32,
) -> Path:
    """A 2-layer model with its sub-word tokenizer trained on the tiny vocabulary (with
    ``weights=False`` only its config and tokenizer, for ``--from-scratch`` runs; ``width``
    64 for bitsandbytes' CPU kernels, which pack weights in blocks of 64 inputs)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, RobertaConfig, RobertaForMaskedLM

    from hubtool.training.subwords import train_tokenizer

    fast = train_tokenizer(texts(400) + list(WORDS) + list(extra_words) * 5, 150, 64)
    common = {
        "vocab_size": len(fast),
        "hidden_size": width,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 2 * width,
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


def qa_rows(n: int, seed: int = 0, unanswerable: bool = False, words: int = 14) -> list[dict]:
    """SQuAD-style rows: who is in the text (a person) and where (a place). With
    ``unanswerable``, some contexts have no place and their "where" question no answer."""
    rng = random.Random(seed)
    plain = [w for w in WORDS if w not in PEOPLE and w not in PLACES]
    rows = []
    for i in range(n):
        context_words = [rng.choice(plain) for _ in range(rng.randint(3, words))]
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        context_words.insert(rng.randint(0, len(context_words)), person)
        has_place = not (unanswerable and i % 4 == 3)
        if has_place:
            context_words.insert(rng.randint(0, len(context_words)), place)
        context = " ".join(context_words)
        asks_place = i % 2 == 1 or (unanswerable and i % 4 == 3)
        answer = place if asks_place else person
        question = "where is it" if asks_place else "who is there"
        if asks_place and not has_place:
            answers = {"text": [], "answer_start": []}
        else:
            start = f" {context} ".index(f" {answer} ")
            answers = {"text": [answer], "answer_start": [start]}
        rows.append({"id": str(i), "question": question, "context": context, "answers": answers})
    return rows


TRANSLATE = {
    "the": "le",
    "cat": "chat",
    "dog": "chien",
    "sat": "assis",
    "on": "sur",
    "mat": "tapis",
    "ran": "couru",
    "fast": "vite",
    "slow": "lent",
    "happy": "heureux",
    "sad": "triste",
    "good": "bon",
    "bad": "mauvais",
    "movie": "film",
    "film": "film",
    "great": "super",
    "awful": "affreux",
    "paris": "paris",
    "london": "londres",
    "berlin": "berlin",
    "city": "ville",
    "river": "fleuve",
    "alice": "alice",
    "bob": "bob",
    "carol": "carole",
    "met": "vu",
    "in": "dans",
}


def summary_rows(n: int, seed: int = 0) -> list[dict]:
    """A document and its "headline": the people and places it names, in order."""
    rows = []
    for t in texts(n, seed):
        named = [w for w in t.split() if w in PEOPLE or w in PLACES] or ["nothing"]
        rows.append({"document": t, "summary": " ".join(named)})
    return rows


def translation_rows(n: int, seed: int = 0) -> list[dict]:
    """English to "French", word for word, as {"translation": {"en": …, "fr": …}}."""
    return [
        {"translation": {"en": t, "fr": " ".join(TRANSLATE[w] for w in t.split())}}
        for t in texts(n, seed)
    ]


# BART's and M2M100's (NLLB's) sizes for the tiny models: the same config names
ENCODER_DECODER_SIZE = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "max_position_embeddings": 128,
}


def build_seq2seq_checkpoint(folder: Path, kind: str = "t5") -> Path:
    """A 2-layer T5 or BART with a sub-word tokenizer trained on the tiny vocabulary and its
    translations ([SEP] ends every text: the end-of-sequence token)."""
    import torch
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        T5Config,
        T5ForConditionalGeneration,
    )

    from hubtool.training.subwords import train_tokenizer

    words = list(WORDS) + list(TRANSLATE.values()) + ["nothing"]
    fast = train_tokenizer(texts(400) + words * 3, 200, 128)
    fast.add_special_tokens({"eos_token": "[SEP]", "bos_token": "[CLS]"})
    pad, eos, bos = fast.pad_token_id, fast.eos_token_id, fast.bos_token_id
    torch.manual_seed(0)
    if kind == "bart":
        config = BartConfig(
            vocab_size=len(fast),
            **ENCODER_DECODER_SIZE,
            pad_token_id=pad,
            bos_token_id=bos,
            eos_token_id=eos,
            decoder_start_token_id=eos,
            forced_eos_token_id=eos,
        )
        model = BartForConditionalGeneration(config)
    else:
        config = T5Config(
            vocab_size=len(fast),
            d_model=32,
            d_ff=64,
            d_kv=16,
            num_layers=2,
            num_heads=2,
            pad_token_id=pad,
            eos_token_id=eos,
            decoder_start_token_id=pad,
        )
        model = T5ForConditionalGeneration(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


HOMES = {"alice": "paris", "bob": "london", "carol": "berlin"}
CHATML = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_rows(n: int, seed: int = 0, system: bool = False) -> list[dict]:
    """Who lives where: a user asks, the assistant answers from a fixed map (learnable)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        who = rng.choice(PEOPLE)
        messages = [{"role": "system", "content": "answer briefly"}] if system else []
        messages += [
            {"role": "user", "content": f"where does {who} live"},
            {"role": "assistant", "content": f"{who} lives in {HOMES[who]}"},
        ]
        rows.append({"messages": messages})
    return rows


def prompt_completion_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        who = rng.choice(PEOPLE)
        rows.append({"prompt": f"{who} lives in", "completion": f" {HOMES[who]}"})
    return rows


def build_decoder_checkpoint(folder: Path, kind: str = "gpt2", width: int = 32) -> Path:
    """A 2-layer GPT-2 (no chat template, as GPT-2 ships) or Llama (a ChatML template whose
    end-of-turn token is its end-of-text token) with a byte-level BPE trained on the tiny
    vocabulary and its chat words (``width`` as in build_checkpoint)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = (
        texts(400)
        + [
            f"User: where does {p} live\nAssistant: {p} lives in {h}\nuser assistant system "
            "answer briefly"
            for p, h in HOMES.items()
        ]
        * 20
    )
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    if kind == "llama":
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
        )
        fast.chat_template = CHATML
        config = LlamaConfig(
            vocab_size=len(fast),
            hidden_size=width,
            intermediate_size=2 * width,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=128,
            bos_token_id=fast.bos_token_id,
            eos_token_id=fast.eos_token_id,
            pad_token_id=fast.pad_token_id,
        )
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    else:
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>"
        )
        config = GPT2Config(
            vocab_size=len(fast),
            n_embd=width,
            n_layer=2,
            n_head=2,
            n_positions=128,
            bos_token_id=fast.bos_token_id,
            eos_token_id=fast.eos_token_id,
        )
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


NLLB_CODES = ["eng_Latn", "fra_Latn", "deu_Latn", "zho_Hans", "zho_Hant"]


def build_nllb_checkpoint(folder: Path) -> Path:
    """A 2-layer M2M100 (NLLB's architecture) with an NLLB tokenizer (language codes such as
    eng_Latn as special tokens) whose BPE is trained on the tiny vocabulary and translations."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizer

    words = list(WORDS) + list(TRANSLATE.values()) + ["nothing"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    bpe.train_from_iterator(
        texts(400) + words * 3,
        trainers.BpeTrainer(vocab_size=200, special_tokens=["<s>", "<pad>", "</s>", "<unk>"]),
    )
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    fast = NllbTokenizer(vocab=model["vocab"], merges=merges, additional_special_tokens=NLLB_CODES)
    config = M2M100Config(
        vocab_size=len(fast),
        **ENCODER_DECODER_SIZE,
        pad_token_id=fast.pad_token_id,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        decoder_start_token_id=fast.eos_token_id,
    )
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
