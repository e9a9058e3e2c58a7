"""Causal language modelling with decoder-only checkpoints (GPT-2, Llama, Qwen…), in three
formats the data tells apart:

- ``text``: plain text (continued pretraining), texts joined with the end-of-text token and
  cut into blocks of ``max_length``; every token is learned.
- ``chat``: a ``messages`` column of ``{role, content}`` lists rendered with the checkpoint's
  chat template (or hubtool's plain one, saved with the model, when it has none); only the
  assistant's turns are learned unless ``--train-on-prompt``.
- ``prompt-completion``: ``prompt`` and ``completion`` text columns joined as they are, the
  completion ended with the end-of-text token; only the completion is learned unless
  ``--train-on-prompt``.

Evaluation gives the loss and perplexity over the learned tokens (the same masking as
training) and generates, greedily and bounded, from a fixed set of validation prompts: the
card shows them beside their references."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from hubtool.core.architectures import Fit
from hubtool.errors import UsageError
from hubtool.tasks.base import (
    Checkpoint,
    Collate,
    Columns,
    Predictions,
    Task,
    check_given,
    check_texts,
    clip_text,
    example_text,
    literal,
    metric,
    missing,
    row_value,
)
from hubtool.tasks.classification import text_columns

SAMPLES = 4  # validation prompts generated from at each evaluation
SAMPLE_PROMPT_TOKENS = 16  # plain text: the first tokens of a block are its prompt
ROLES = ("system", "user", "assistant", "tool")
RENDERED_LIMIT = 600  # characters of the first conversation, rendered, shown in the card
TEMPLATE_LIMIT = 64 << 10  # a --chat-template file larger than this is refused
# hubtool's template for checkpoints without one: each turn on its own line, the assistant's
# ended by the tokenizer's end-of-text token (so generation stops where a turn ends)
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}"
    "{% if message['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


class TextGeneration(Task):
    name = "text-generation"
    title = "Causal Language Modeling"
    auto_class = "AutoModelForCausalLM"
    best_metric = "perplexity"
    release_requirement = "perplexity<50"
    labelled = False
    predicts = False
    bias_probe = "generative"
    metric_names: ClassVar[dict[str, str]] = {
        "rouge1": "ROUGE-1",
        "rouge2": "ROUGE-2",
        "rougeL": "ROUGE-L",
        "rougeLsum": "ROUGE-Lsum",
        "bleu": "sacreBLEU",
        "chrf": "chrF",
    }
    examples: ClassVar[dict[str, Any]] = {
        "en": "The city council met on Tuesday and",
        "fr": "Le conseil municipal s'est réuni mardi et",
    }

    # -- data ----------------------------------------------------------------------------------
    def claims(self, columns: list[str], label_column: str | None) -> bool:
        return "messages" in columns or {"prompt", "completion"} <= set(columns)

    def columns(self, columns: list[str], cfg: Any) -> Columns:
        check_given(columns, cfg)
        completion = cfg.target_column or cfg.label_column
        prompt = cfg.source_column or (cfg.text_column if completion else None)
        for given, what in ((prompt, "prompt"), (completion, "completion")):
            if given and given not in columns:
                raise missing(given, what, columns)
        paired = {"prompt", "completion"} <= set(columns) and not cfg.text_column
        if prompt or completion or paired:
            return Columns(prompt or "prompt", None, completion or "completion")
        if cfg.text_column:
            return Columns(cfg.text_column)
        if "messages" in columns:
            return Columns("messages")
        return Columns(text_columns(columns, cfg)[0])

    def check_rows(self, ds: Any, split: str, cols: Columns) -> None:
        form = data_format(ds, cols)
        if form == "chat":
            for i, messages in enumerate(ds[cols.text]):
                check_messages(messages, i, split)
        elif form == "prompt-completion":
            check_texts(ds, cols.text, split, False)
            for i, value in enumerate(ds[str(cols.label)]):
                if not isinstance(value, str) or not value.strip():
                    raise UsageError(
                        f"Row {i} of split {split!r} has {_what(value)} completion in "
                        f"{cols.label!r}.",
                        "Every example needs a completion to learn: remove the row or fill it in.",
                    )
        else:
            check_texts(ds, cols.text, split, False)

    def preparation(self, cfg: Any, train: Any, cols: Columns, tokenizer: Any) -> dict[str, Any]:
        form = data_format(train, cols)
        prepared: dict[str, Any] = {"format": form, "train_on_prompt": bool(cfg.train_on_prompt)}
        if form == "chat":
            prepared["chat_template"] = template_source(cfg, tokenizer)
            ready_tokenizer(tokenizer, cfg, form)
            shown = _render(tokenizer, train[0][cols.text], False, 0)
            prepared["rendered_example"] = shown[:RENDERED_LIMIT]
        return prepared

    def configure(self, model: Any, preparation: dict[str, Any]) -> None:
        model.config.hubtool_data_format = preparation.get("format")

    def tokenize(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        form = data_format(ds, cols)
        ready_tokenizer(tokenizer, cfg, form)
        if form == "text":
            return _blocks(ds, tokenizer, int(cfg.max_length or 128), cols)
        return _examples(ds, tokenizer, cfg, cols, form)

    def collator(self, tokenizer: Any, cfg: Any, pad_multiple: int | None = None) -> Collate:
        if cfg.packing:
            return PackedCausalBatches(tokenizer.pad_token_id, int(cfg.max_length or 128))
        return PaddedCausalBatches(tokenizer.pad_token_id, pad_multiple)

    def evaluation_set(self, validation: Any, collate: Collate, seed: int) -> tuple[Any, Collate]:
        """One example per row (each example's loss is read from its own row)."""
        if isinstance(collate, PackedCausalBatches):
            return validation, PaddedCausalBatches(collate.pad_id)
        return validation, collate

    def check_model(self, model: Any, cfg: Any, preparation: dict[str, Any]) -> None:
        """--eval-metrics modules that load; --packing only where the model keeps packed
        examples apart (the logits of an example packed after another must be those it has
        alone)."""
        for name in eval_modules(cfg.eval_metrics):
            metric(name)  # a module that cannot be loaded is refused now, not after training
        if not cfg.packing or preparation.get("format") == "text":
            return  # plain text is cut into full blocks: nothing to pack
        if not keeps_packed_apart(model):
            raise UsageError(
                f"--packing: {type(model).__name__} does not keep packed examples apart (an "
                "example's logits change when another is packed before it), so training "
                "would mix examples.",
                "Drop --packing: batches are grouped by length, so padding stays low.",
            )

    def data_settings(self, config: dict[str, Any]) -> dict[str, Any] | None:
        return {"max_new_tokens": config.get("max_new_tokens") or 48}

    # -- evaluation --------------------------------------------------------------------------
    def row_numbers(self, raw: Any, features: Any, cols: Columns) -> list[int] | None:
        """Examples are rows; plain text is joined and cut into blocks (no rows)."""
        if data_format(raw, cols) == "text":
            return None
        return super().row_numbers(raw, features, cols)

    def example_stats(
        self, p: Predictions, label_names: list[str] | None
    ) -> dict[str, tuple[Any, Any]]:
        """Perplexity: the exponential of summed token losses over summed tokens."""
        import math

        import numpy as np

        stats = np.stack([np.asarray(p.losses, float), np.asarray(p.counts, float)], axis=1)

        def perplexity(summed: Any) -> float:
            return math.exp(min(summed[0] / summed[1], 700.0)) if summed[1] else math.nan

        return {"perplexity": (stats, perplexity)}

    # -- evaluation --------------------------------------------------------------------------
    def predict(
        self, accelerator: Any, model: Any, loader: Any, out: Predictions, cfg: Any, tokenizer: Any
    ) -> None:
        """Each example's summed loss and its learned tokens, then the samples."""
        import time

        import torch

        for batch in loader:
            with torch.inference_mode():
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                sums, counts = _example_sums(logits.logits, batch["labels"])
            sums, counts = accelerator.gather_for_metrics((sums, counts))
            out.losses += sums.float().tolist()
            out.counts += counts.tolist()
        start = time.perf_counter()
        out.metric_modules = eval_modules(cfg.eval_metrics)
        every = bool(out.metric_modules)  # scored: every example generates, else the samples
        out.predictions = samples(accelerator.unwrap_model(model), tokenizer, loader, cfg, every)
        out.timing = {"generation": time.perf_counter() - start}

    def compute(self, p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
        import numpy as np

        counts = np.asarray(p.counts, dtype=float)
        means = np.asarray(p.losses, dtype=float) / np.maximum(counts, 1)
        result = dict(metric("perplexity").compute(losses=means.tolist(), counts=p.counts))
        generated = [x for x in p.predictions if isinstance(x, dict)]
        if generated:
            result["samples"] = generated[:SAMPLES]
        for name in p.metric_modules:  # --eval-metrics: the generations against references
            scores = metric(name).compute(
                predictions=[g["generated"].strip() for g in generated],
                references=[g["reference"].strip() for g in generated],
            )
            result.update(scores)
        return result

    # -- card and search -----------------------------------------------------------------------
    def data_example(self, row: dict[str, Any], cols: Columns, cfg: Any) -> Any:
        """Chat: the conversation up to its first assistant turn; prompt-completion: the
        prompt; plain text: its first twelve words, to be continued."""
        value = row_value(row, cols.text)
        if isinstance(value, list):
            opening = []
            for message in value:
                if not isinstance(message, dict) or message.get("role") == "assistant":
                    break
                opening.append(
                    {"role": message.get("role"), "content": clip_text(message.get("content"))}
                )
            return opening if opening and all(m["content"] for m in opening) else None
        if cols.label is not None:
            return example_text(value)
        return example_text(" ".join(str(value or "").split()[:12]))

    def card_example(self, example: Any, preparation: dict[str, Any]) -> Any:
        if preparation.get("format") == "chat" and isinstance(example, str):
            return [{"role": "user", "content": example}]
        return example

    def widget(self, example: Any) -> dict[str, Any]:
        if isinstance(example, list):  # a chat model: the Hub's conversational widget
            return {"messages": example}
        return {"text": example}

    def usage(self, repo: str, example: Any, options: str) -> str:
        shown = (
            "[" + ", ".join(_message_literal(m) for m in example) + "]"
            if isinstance(example, list)
            else literal(example)
        )
        return (
            "from transformers import pipeline\n\n"
            f"pipe = pipeline({literal(self.name)}, model={literal(repo)}{options})\n"
            f"print(pipe({shown}, max_new_tokens=48, do_sample=False))\n"
        )

    def fit(self, checkpoint: Checkpoint) -> Fit:
        if (ready := self.ready(checkpoint)) is not None:
            return ready
        return self.family_fit(
            checkpoint,
            "decoder",
            "a decoder without its language-model head: a new one is trained (tied to the "
            "embeddings where the architecture ties them)",
            {"encoder": "an encoder", "seq2seq": "an encoder-decoder model", "": "not a decoder"},
            "decoder-only checkpoints (GPT-2, Llama, Qwen, Mistral…)",
        )


# -- data formats ---------------------------------------------------------------------------
def data_format(ds: Any, cols: Columns) -> str:
    """``prompt-completion`` (two text columns), ``chat`` (a column of message lists) or
    ``text``."""
    if cols.label:
        return "prompt-completion"
    first = ds[0][cols.text] if len(ds) else None
    return "chat" if cols.text == "messages" or isinstance(first, list) else "text"


def check_messages(messages: Any, row: int, split: str) -> None:
    """A conversation: {role, content} messages with at least one assistant turn to learn."""
    where = f"Row {row} of split {split!r}"
    hint = (
        'Each row needs a list of {"role": ..., "content": ...} messages (roles: '
        f"{', '.join(ROLES)}) with at least one assistant message."
    )
    if not isinstance(messages, list) or not messages:
        raise UsageError(f"{where} has no messages ({_what(messages)}).", hint)
    for j, message in enumerate(messages):
        ok = isinstance(message, dict) and message.get("role") in ROLES
        if not ok or not isinstance(message.get("content"), str):
            raise UsageError(f"{where}: message {j} is not a chat message ({message!r:.80}).", hint)
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise UsageError(f"{where} has no assistant message with text to learn.", hint)


def template_source(cfg: Any, tokenizer: Any) -> str:
    """Where the chat template comes from, for run.json and the card."""
    if cfg.chat_template:
        return f"from {Path(cfg.chat_template).name}"
    if getattr(tokenizer, "chat_template", None):
        return "the checkpoint's"
    return "hubtool's plain template (the checkpoint has none)"


def ready_tokenizer(tokenizer: Any, cfg: Any, form: str) -> None:
    """An end-of-text token and, for chat data, the chat template the model is trained with
    (saved with the model's tokenizer). A tokenizer without padding already pads with its
    end-of-text token (``training.loop.load_tokenizer``)."""
    if tokenizer.eos_token is None:
        raise UsageError(
            f"The tokenizer of {cfg.model} has no end-of-text token, so a causal LM trained "
            "with it would never learn where a text ends.",
            "Choose a decoder checkpoint whose tokenizer defines eos_token.",
        )
    if form != "chat":
        return
    if cfg.chat_template:
        tokenizer.chat_template = _read_template(Path(cfg.chat_template))
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = PLAIN_TEMPLATE


def _read_template(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > TEMPLATE_LIMIT:
            raise UsageError(
                f"The chat template {path} is {size:,} bytes (the limit is {TEMPLATE_LIMIT:,})."
            )
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"Cannot read the chat template {path}: {exc}",
            "Give a Jinja file (UTF-8) such as the chat_template.jinja of a checkpoint.",
        ) from None


def _blocks(ds: Any, tokenizer: Any, block: int, cols: Columns) -> tuple[Any, int]:
    """Texts joined with the end-of-text token and cut into blocks (the last may be shorter)."""
    eos = tokenizer.eos_token_id

    def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
        ids = tokenizer(batch[cols.text], add_special_tokens=False, verbose=False)["input_ids"]
        return {"input_ids": [[*row, eos] for row in ids]}

    def group(batch: dict[str, list[Any]]) -> dict[str, Any]:
        joined = [t for row in batch["input_ids"] for t in row]
        rows = [joined[i : i + block] for i in range(0, len(joined), block)]
        rows = [r for r in rows if len(r) > 1]  # one token teaches nothing
        return {
            "input_ids": rows,
            "labels": rows,
            "length": [len(r) for r in rows],
            "prompt_length": [min(SAMPLE_PROMPT_TOKENS, len(r) // 2) for r in rows],
        }

    tokenized = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")
    grouped = tokenized.map(
        group, batched=True, batch_size=1000, remove_columns=["input_ids"], desc="Blocks"
    )
    if len(grouped) == 0:
        raise UsageError("The text is too short to make one block.", "Add text.")
    return grouped, 0


def _examples(ds: Any, tokenizer: Any, cfg: Any, cols: Columns, form: str) -> tuple[Any, int]:
    """One row per example, labels -100 where the prompt is (unless train_on_prompt)."""
    limit, learn_all = int(cfg.max_length or 128), bool(cfg.train_on_prompt)
    encode_one = _chat_example if form == "chat" else _prompt_completion
    rows: dict[str, list[Any]] = {"input_ids": [], "labels": [], "length": [], "prompt_length": []}
    truncated = 0
    for i, example in enumerate(ds):
        ids, learned, prompt = encode_one(tokenizer, example, cols, i, learn_all)
        if len(ids) > limit:
            truncated += 1
            ids, learned = ids[:limit], learned[:limit]
        if not learn_all and not any(learned[1:]):
            raise UsageError(
                f"Example {i} has nothing left to learn once cut to {limit} tokens: its "
                f"prompt alone is {prompt} tokens.",
                "Raise --max-length, or shorten or remove the example.",
            )
        labels = [t if (keep or learn_all) else -100 for t, keep in zip(ids, learned, strict=True)]
        rows["input_ids"].append(ids)
        rows["labels"].append(labels)
        rows["length"].append(len(ids))
        rows["prompt_length"].append(min(prompt, len(ids) - 1))
    import datasets

    return datasets.Dataset.from_dict(rows), truncated


def _prompt_completion(
    tokenizer: Any, example: dict[str, Any], cols: Columns, row: int, learn_all: bool
) -> tuple[list[int], list[bool], int]:
    prompt = tokenizer(example[cols.text], verbose=False)["input_ids"]  # with its BOS, if any
    answer = tokenizer(example[str(cols.label)], add_special_tokens=False)["input_ids"]
    answer = [*answer, tokenizer.eos_token_id]
    return prompt + answer, [False] * len(prompt) + [True] * len(answer), len(prompt)


def _chat_example(
    tokenizer: Any, example: dict[str, Any], cols: Columns, row: int, learn_all: bool
) -> tuple[list[int], list[bool], int]:
    """The conversation rendered with the chat template; the characters of each assistant
    turn found by rendering the conversation up to it (with the generation prompt) and
    through it, and the tokens starting inside them learned. Also the tokens before the last
    assistant turn: the prompt samples are generated from."""
    messages = example[cols.text]
    full = _render(tokenizer, messages, False, row)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], True, row)
        through = _render(tokenizer, messages[: i + 1], False, row)
        if not (full.startswith(through) and through.startswith(before)):
            if learn_all:  # every token is learned: only where the last prompt ends matters
                spans.append((_shared_prefix(full, before), len(full)))
                continue
            raise UsageError(
                f"Row {row}: the chat template renders the conversation differently turn by "
                "turn (it rewrites earlier turns), so the assistant's tokens cannot be told "
                "from the prompt's.",
                "Pass --train-on-prompt to learn every token, or --chat-template FILE with a "
                "template that renders earlier turns unchanged.",
            )
        spans.append((len(before), len(through)))
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [start for start, _ in encoded["offset_mapping"]]
    learned = [any(s <= start < e for s, e in spans) for start in offsets]
    last = spans[-1][0]  # check_messages made sure there is an assistant turn
    return list(encoded["input_ids"]), learned, sum(1 for start in offsets if start < last)


def _shared_prefix(a: str, b: str) -> int:
    """How many leading characters two texts share."""
    pairs = enumerate(zip(a, b, strict=False))  # up to the shorter one
    return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))


def _render(tokenizer: Any, messages: list[dict[str, Any]], prompt: bool, row: int) -> str:
    try:
        return str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt)
        )
    except Exception as exc:  # jinja2's TemplateError and the template's raise_exception()
        raise UsageError(
            f"Row {row}: the chat template cannot render this conversation: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
            "Check the roles the template allows (many want user and assistant to alternate), "
            "or give another with --chat-template FILE.",
        ) from None


class PaddedCausalBatches:
    """Pads ``input_ids`` with the padding token and ``labels`` with -100 (an end-of-text
    token used as padding stays learned where it is real); drops the bookkeeping columns."""

    def __init__(self, pad_id: int, pad_multiple: int | None = None) -> None:
        self.pad_id, self.pad_multiple = pad_id, pad_multiple

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        if self.pad_multiple:
            width = -(-width // self.pad_multiple) * self.pad_multiple
        ids = torch.full((len(features), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        # no key/value cache in training: nothing reads it, and it costs memory
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "use_cache": False}


class PackedCausalBatches:
    """A batch's examples packed into rows of at most ``limit`` tokens (first fit, longest
    first), ``position_ids`` restarting at each example and no attention mask: transformers
    then masks attention block by block, so no example sees another. The first label of each
    packed example is -100 (it would be predicted from the previous example's last token)."""

    def __init__(self, pad_id: int, limit: int) -> None:
        self.pad_id, self.limit = pad_id, limit

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows: list[list[dict[str, Any]]] = []
        for f in sorted(features, key=lambda f: -len(f["input_ids"])):
            room = next(
                (
                    r
                    for r in rows
                    if sum(len(x["input_ids"]) for x in r) + len(f["input_ids"]) <= self.limit
                ),
                None,
            )
            if room is None:
                rows.append([f])
            else:
                room.append(f)
        width = max(sum(len(x["input_ids"]) for x in r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            at = 0
            for f in row:
                n = len(f["input_ids"])
                ids[i, at : at + n] = torch.tensor(f["input_ids"])
                labels[i, at + 1 : at + n] = torch.tensor(f["labels"][1:])
                positions[i, at : at + n] = torch.arange(n)
                at += n
            positions[i, at:] = torch.arange(width - at)  # padding: a segment of its own
        # no cache: with one, transformers skips the block-by-block mask of packed rows
        return {"input_ids": ids, "labels": labels, "position_ids": positions, "use_cache": False}


def keeps_packed_apart(model: Any) -> bool:
    """Whether the model's logits for an example are the same alone and packed after
    another example (position ids reset, no attention mask)."""
    import torch

    vocab = int(model.config.vocab_size)
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(0, vocab, (1, 5), generator=generator)
    second = torch.randint(0, vocab, (1, 7), generator=generator)
    packed = torch.cat([first, second], dim=1)
    positions = torch.cat([torch.arange(5), torch.arange(7)]).unsqueeze(0)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            alone = model(input_ids=second).logits
            together = model(input_ids=packed, position_ids=positions, use_cache=False)
            together = together.logits[:, 5:]
        return bool(torch.allclose(alone.float(), together.float(), atol=1e-4, rtol=1e-3))
    except (TypeError, ValueError, RuntimeError):  # a forward without position_ids
        return False
    finally:
        model.train(was_training)


# -- evaluation helpers ---------------------------------------------------------------------
def _example_sums(logits: Any, labels: Any) -> tuple[Any, Any]:
    """Each example's summed next-token loss and the tokens it covers (one example at a time:
    a batch of fp32 logits over a large vocabulary is gigabytes)."""
    import torch
    import torch.nn.functional as F

    sums, counts = [], []
    for row, target in zip(logits, labels, strict=True):
        shifted = target[1:]
        sums.append(F.cross_entropy(row[:-1].float(), shifted, ignore_index=-100, reduction="sum"))
        counts.append((shifted != -100).sum())
    return torch.stack(sums).detach(), torch.stack(counts)


# --eval-metrics names: the shipped modules that score generated text
EVAL_METRICS = {"rouge": "rouge_scores", "sacrebleu": "sacrebleu_chrf", "bleu": "sacrebleu_chrf"}


def eval_modules(given: str | None) -> tuple[str, ...]:
    """The evaluate modules --eval-metrics names (rouge, sacrebleu; or any module name)."""
    names = [n.strip() for n in (given or "").split(",") if n.strip()]
    return tuple(dict.fromkeys(EVAL_METRICS.get(n, n) for n in names))


def samples(
    model: Any, tokenizer: Any, loader: Any, cfg: Any, every: bool = False
) -> list[dict[str, str]]:
    """Greedy generations (at most ``max_new_tokens``) from the first validation prompts
    (``every``: from all of them), with what the data has after each prompt: the same on
    every process."""
    import torch

    dataset = getattr(loader, "dataset", None)
    if dataset is None or "prompt_length" not in dataset.column_names:
        return []
    new_tokens = int(cfg.max_new_tokens or 48)
    out = []
    for row in dataset.select(range(len(dataset) if every else min(SAMPLES, len(dataset)))):
        cut = int(row["prompt_length"])
        prompt = torch.tensor([row["input_ids"][:cut]], device=model.device)
        with torch.inference_mode():
            generated = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        after = zip(row["input_ids"][cut:], row["labels"][cut:], strict=True)
        reference = [t for t, lab in after if lab != -100]
        out.append(
            {
                "prompt": tokenizer.decode(row["input_ids"][:cut], skip_special_tokens=False),
                "generated": tokenizer.decode(generated[0, cut:], skip_special_tokens=True),
                "reference": tokenizer.decode(reference[:new_tokens], skip_special_tokens=True),
            }
        )
    return out


def _what(value: Any) -> str:
    return "an empty" if isinstance(value, str) or value is None else f"a non-text ({value!r:.40})"


def _message_literal(message: dict[str, str]) -> str:
    return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in message.items()) + "}"
