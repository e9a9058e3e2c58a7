"""Extractive question answering (SQuAD style): ``question``, ``context`` and ``answers``
{``text``, ``answer_start``} columns. Long contexts are split into overlapping windows
(``doc_stride`` tokens shared), each window labelled with the answer's start and end tokens
(or the first token when the answer is not in it, or the question has none: SQuAD 2.0). For
evaluation the best span of every window is mapped back to characters of the context through
the offsets, the best over an example's windows wins, and an empty answer is predicted when
"no answer" scores higher. Exact match and F1 come from the shipped ``squad_qa`` module."""

from __future__ import annotations

from typing import Any, ClassVar

from hubtool.core.architectures import Fit
from hubtool.errors import UsageError
from hubtool.tasks.base import (
    Checkpoint,
    Collate,
    Columns,
    Predictions,
    Task,
    bucket_names,
    buckets,
    check_given,
    clip_text,
    literal,
    mean_loss,
    mean_stats,
    metric,
    missing,
    row_value,
)

TOP_K = 20  # candidate start and end tokens per window
WORD_BUCKETS = {"context": (64, 128, 256, 512), "question": (6, 10, 15, 25)}
# what evaluation features keep to map predictions back; never passed to the model
MAPPING_COLUMNS = frozenset({"offsets", "example_id", "context", "gold", "question_words"})


class QuestionAnswering(Task):
    name = "question-answering"
    title = "Extractive Question Answering"
    auto_class = "AutoModelForQuestionAnswering"
    best_metric = "f1"
    release_requirement = "f1>=0.80"
    labelled = False  # answers are spans, not classes
    metric_names: ClassVar[dict[str, str]] = {"f1": "F1 (token overlap)"}
    examples: ClassVar[dict[str, Any]] = {
        "en": {
            "text": "Where does Sarah live?",
            "context": "My name is Sarah and I live in London.",
        },
        "fr": {"text": "Où habite Marie ?", "context": "Je m'appelle Marie et j'habite à Lyon."},
    }

    def data_example(self, row: dict[str, Any], cols: Columns, cfg: Any) -> Any:
        question = clip_text(row_value(row, cols.text))
        context = clip_text(row_value(row, str(cols.pair)))
        return {"text": question, "context": context} if question and context else None

    def claims(self, columns: list[str], label_column: str | None) -> bool:
        return {"question", "context", "answers"} <= set(columns)

    def fit(self, checkpoint: Checkpoint) -> Fit:
        found = super().fit(checkpoint)
        if found.level != "no":
            return found
        arch = checkpoint.heads[0][0] if checkpoint.heads else checkpoint.model_type
        return Fit(
            "no",
            f"{arch or 'this architecture'} is not an encoder: hubtool trains extractive "
            "question answering on encoders (BERT, RoBERTa, DeBERTa…) or checkpoints with a "
            "question-answering head",
        )

    def columns(self, columns: list[str], cfg: Any) -> Columns:
        check_given(columns, cfg)
        chosen = Columns(
            cfg.text_column or "question",
            cfg.text_pair_column or "context",
            cfg.label_column or "answers",
        )
        for column, what in ((chosen.text, "question"), (chosen.pair, "context")):
            if column not in columns:
                raise missing(str(column), what, columns)
        if chosen.label not in columns:
            raise missing(str(chosen.label), "answers", columns)
        return chosen

    def check_rows(self, ds: Any, split: str, cols: Columns) -> None:
        super().check_rows(ds, split, cols)
        for i, (context, answers) in enumerate(zip(ds[cols.pair], ds[cols.label], strict=True)):
            for text, start in _answers(answers, i, split, cols.label):
                if context[start : start + len(text)] != text:
                    found = context[start : start + len(text)]
                    raise UsageError(
                        f"Row {i} of split {split!r}: the answer {text!r:.60} does not start at "
                        f"character {start} of the context (found {found!r:.60} there).",
                        "answer_start counts characters from 0 in the context; fix the offset "
                        "or the answer text.",
                    )

    # -- features ----------------------------------------------------------------------------
    def tokenize(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        return self._windows(ds, tokenizer, cfg, cols, keep=False)

    def tokenize_eval(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        features, cut = self._windows(ds, tokenizer, cfg, cols, keep=True)
        return features.add_column("feature", list(range(len(features)))), cut

    def _windows(
        self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns, keep: bool
    ) -> tuple[Any, int]:
        """Windows of every example; with ``keep``, what maps predictions back (offsets of
        context tokens, -1 elsewhere; the example's index, context and gold answers)."""
        if not getattr(tokenizer, "is_fast", False):
            raise UsageError(
                "Question answering needs a fast tokenizer (character offsets).",
                "Use a checkpoint that ships tokenizer.json.",
            )
        question, context, answers = str(cols.text), str(cols.pair), str(cols.label)
        right = tokenizer.padding_side == "right"  # question first, unless padded on the left
        stride = _stride(cfg)

        def encode(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, Any]:
            questions = [q.lstrip() for q in batch[question]]
            pair = (questions, batch[context]) if right else (batch[context], questions)
            try:
                out = tokenizer(
                    *pair,
                    truncation="only_second" if right else "only_first",
                    max_length=cfg.max_length,
                    stride=stride,
                    return_overflowing_tokens=True,
                    return_offsets_mapping=True,
                )
            except Exception as exc:  # the tokenizers library raises a bare Exception
                raise _too_long(questions, tokenizer, cfg) from exc
            origin = out.pop("overflow_to_sample_mapping")
            starts, ends, offsets = [], [], []
            for f, sample in enumerate(origin):
                side = 1 if right else 0
                seq = out.sequence_ids(f)
                spans = [
                    o if s == side else (-1, -1)
                    for o, s in zip(out["offset_mapping"][f], seq, strict=True)
                ]
                gold = list(_answers(batch[answers][sample], indices[sample], "", answers))
                s, e = _positions(spans, gold[0] if gold else None)
                starts.append(s)
                ends.append(e)
                offsets.append([list(o) for o in spans])
            out.pop("offset_mapping")
            out["start_positions"], out["end_positions"] = starts, ends
            out["length"] = [len(ids) for ids in out["input_ids"]]
            if keep:
                out["offsets"] = offsets
                out["example_id"] = [indices[s] for s in origin]
                out["context"] = [batch[context][s] for s in origin]
                out["gold"] = [
                    [t for t, _ in _answers(batch[answers][s], 0, "", answers)] for s in origin
                ]
                out["question_words"] = [len(questions[s].split()) for s in origin]
            return out

        mapped = ds.map(
            encode,
            batched=True,
            with_indices=True,
            remove_columns=ds.column_names,
            desc="Splitting contexts into windows",
        )
        return mapped, 0  # nothing is cut off: long contexts become several windows

    def collator(self, tokenizer: Any, cfg: Any, pad_multiple: int | None = None) -> Collate:
        from transformers import DataCollatorWithPadding

        pad = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_multiple)
        skipped = MAPPING_COLUMNS | {"length"}

        def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
            return pad([{k: v for k, v in r.items() if k not in skipped} for r in rows])

        return collate

    def data_settings(self, config: dict[str, Any]) -> dict[str, Any] | None:
        return {"max_answer_length": config.get("max_answer_length")}

    def preparation(self, cfg: Any, train: Any, cols: Columns, tokenizer: Any) -> dict[str, Any]:
        unanswerable = sum(1 for a in train[cols.label] if not a["text"])
        return {"doc_stride": _stride(cfg), "unanswerable": unanswerable}

    def configure(self, model: Any, preparation: dict[str, Any]) -> None:
        model.config.qa_no_answer = bool(preparation.get("unanswerable"))

    # -- evaluation --------------------------------------------------------------------------
    def predict(
        self, accelerator: Any, model: Any, loader: Any, out: Predictions, cfg: Any, tokenizer: Any
    ) -> None:
        import torch

        windows: list[dict[str, Any]] = []
        for batch in loader:
            feature = batch.pop("feature")
            with torch.inference_mode():
                outputs = model(**batch)
            windows += self._candidates(accelerator, outputs, batch, feature, out)
        features = loader.dataset
        config = accelerator.unwrap_model(model).config
        no_answer = bool(getattr(config, "qa_no_answer", False))
        _answer(out, windows, features, int(cfg.max_answer_length), no_answer)

    def _candidates(
        self, accelerator: Any, outputs: Any, batch: dict[str, Any], feature: Any, out: Predictions
    ) -> list[dict[str, Any]]:
        """The top start and end tokens of each window (gathered from every process), and
        its mean start/end cross-entropy."""
        import torch.nn.functional as F

        start, end = outputs.start_logits.float(), outputs.end_logits.float()
        losses = (
            F.cross_entropy(start, batch["start_positions"], reduction="none")
            + F.cross_entropy(end, batch["end_positions"], reduction="none")
        ) / 2
        k = min(TOP_K, start.shape[1])
        s_val, s_idx = start.topk(k, dim=-1)
        e_val, e_idx = end.topk(k, dim=-1)
        null = start[:, 0] + end[:, 0]
        gathered = accelerator.gather_for_metrics(
            (feature, s_val, s_idx, e_val, e_idx, null, losses.detach())
        )
        feature, s_val, s_idx, e_val, e_idx, null, losses = (t.tolist() for t in gathered)
        out.losses += losses
        return [
            {
                "feature": f,
                "starts": list(zip(sv, si, strict=True)),
                "ends": list(zip(ev, ei, strict=True)),
                "null": n,
            }
            for f, sv, si, ev, ei, n in zip(feature, s_val, s_idx, e_val, e_idx, null, strict=True)
        ]

    def compute(self, p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
        scores = dict(
            metric("squad_qa").compute(predictions=p.predictions, references=p.references)
        )
        counts = {k: int(scores.pop(k, 0)) for k in ("has_answer_total", "no_answer_total")}
        scores["questions"] = {  # counts: details, not scores
            "answerable": counts["has_answer_total"] or len(p.references),
            "unanswerable": counts["no_answer_total"],
            "answered_with_nothing": sum(1 for x in p.predictions if not x),
        }
        return {**scores, **mean_loss(p)}

    def row_numbers(self, raw: Any, features: Any, cols: Columns) -> list[int] | None:
        """Each window's question (its predictions are per question: ``_answer``)."""
        return list(features["example_id"])

    def slice_groups(self, p: Predictions, label_names: list[str] | None) -> dict[str, list[str]]:
        return {
            f"{part} words": bucket_names([a[f"{part}_words"] for a in p.attributes], edges)
            for part, edges in WORD_BUCKETS.items()
        }

    def example_stats(
        self, p: Predictions, label_names: list[str] | None
    ) -> dict[str, tuple[Any, Any]]:
        return mean_stats("squad_qa", p, ("exact_match", "f1"))

    def slices(self, p: Predictions) -> list[dict[str, Any]]:
        """Exact match and F1 by context and question length (words)."""
        scorer = metric("squad_qa")
        rows = []
        for part, edges in WORD_BUCKETS.items():
            words = [a[f"{part}_words"] for a in p.attributes]
            for span, idx in buckets(words, edges):
                s = scorer.compute(
                    predictions=[p.predictions[i] for i in idx],
                    references=[p.references[i] for i in idx],
                )
                rows.append(
                    {
                        "part": part,
                        "words": span,
                        "examples": len(idx),
                        "exact_match": s["exact_match"],
                        "f1": s["f1"],
                    }
                )
        return rows

    # -- card ----------------------------------------------------------------------------------
    def usage(self, repo: str, example: Any, options: str) -> str:
        """transformers 5 has no question-answering pipeline: the span is read from the
        start and end logits and mapped back to the context through the offsets."""
        return (
            "import torch\n"
            "from transformers import AutoModelForQuestionAnswering, AutoTokenizer\n\n"
            f"tokenizer = AutoTokenizer.from_pretrained({literal(repo)})\n"
            f"model = AutoModelForQuestionAnswering.from_pretrained({literal(repo)})\n"
            f"question = {literal(example['text'])}\n"
            f"context = {literal(example['context'])}\n"
            "inputs = tokenizer(question, context, return_offsets_mapping=True, "
            'return_tensors="pt")\n'
            'offsets = inputs.pop("offset_mapping")[0]\n'
            "with torch.no_grad():\n"
            "    out = model(**inputs)\n"
            "in_context = torch.tensor([s == 1 for s in inputs.sequence_ids(0)])\n"
            "start = out.start_logits[0].masked_fill(~in_context, -1e9).argmax()\n"
            "end = out.end_logits[0].masked_fill(~in_context, -1e9)[start:].argmax() + start\n"
            "span = out.start_logits[0][start] + out.end_logits[0][end]\n"
            "nothing = out.start_logits[0][0] + out.end_logits[0][0]  # the no-answer score\n"
            'if getattr(model.config, "qa_no_answer", False) and nothing > span:\n'
            '    print("(no answer)")\n'
            "else:\n"
            "    print(context[offsets[start][0] : offsets[end][1]])\n"
        )


def _too_long(questions: list[str], tokenizer: Any, cfg: Any) -> UsageError:
    """The question that leaves no room for its context in a window, quoted (rows are
    renumbered once a validation share is carved off, so the text is what finds it)."""
    sizes = [len(tokenizer(q, verbose=False)["input_ids"]) for q in questions]
    worst = max(range(len(sizes)), key=sizes.__getitem__)
    return UsageError(
        f"The question {questions[worst]!r:.80} takes {sizes[worst]} tokens: windows of "
        f"{cfg.max_length} tokens (with a stride of {_stride(cfg)}) leave no room for its "
        "context.",
        "Raise --max-length (or lower --doc-stride), or shorten the question.",
    )


def _stride(cfg: Any) -> int:
    limit = int(cfg.max_length or 128)
    stride = limit // 4 if cfg.doc_stride is None else int(cfg.doc_stride)
    if stride >= limit // 2:
        raise UsageError(
            f"--doc-stride {stride} is too large for windows of {limit} tokens: windows "
            "would share more than half their tokens.",
            f"Use --doc-stride {limit // 4} (a quarter of --max-length) or raise --max-length.",
        )
    return stride


def _answers(answers: Any, row: int, split: str, column: Any) -> list[tuple[str, int]]:
    """(text, start) pairs of a SQuAD ``answers`` value; [] for an unanswerable question."""
    ok = isinstance(answers, dict) and {"text", "answer_start"} <= set(answers)
    texts = answers.get("text") if ok else None
    starts = answers.get("answer_start") if ok else None
    if (
        not isinstance(texts, list)
        or not isinstance(starts, list)
        or len(texts) != len(starts)
        or not all(isinstance(t, str) and t for t in texts)
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in starts)
    ):
        raise UsageError(
            f"Row {row} of split {split!r} has answers {answers!r:.80} in column {column!r}.",
            'Give {"text": [answer, ...], "answer_start": [character, ...]} with one start per '
            'answer; {"text": [], "answer_start": []} for a question without an answer.',
        )
    return list(zip(texts, starts, strict=True))


def _positions(spans: list[Any], gold: tuple[str, int] | None) -> tuple[int, int]:
    """The start and end tokens of the answer in this window; (0, 0) when it is not in it."""
    if gold is None:
        return 0, 0
    text, start_char = gold
    end_char = start_char + len(text)
    inside = [i for i, (s, e) in enumerate(spans) if s >= 0]
    if not inside or spans[inside[0]][0] > start_char or spans[inside[-1]][1] < end_char:
        return 0, 0
    start = next(i for i in inside if spans[i][1] > start_char)
    end = next(i for i in reversed(inside) if spans[i][0] < end_char)
    return start, end


def _answer(
    out: Predictions, windows: list[dict[str, Any]], features: Any, longest: int, no_answer: bool
) -> None:
    """Per example: the best span over its windows; "" when no answer scores higher and the
    model learnt unanswerable questions (``no_answer``) or the split has some."""
    columns = {c: features[c] for c in ("example_id", "offsets", "context", "gold")}
    no_answer = no_answer or any(not gold for gold in columns["gold"])
    questions = features["question_words"]
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for w in windows:
        f = w["feature"]
        example, offsets, context = (columns[c][f] for c in ("example_id", "offsets", "context"))
        null[example] = min(null.get(example, float("inf")), w["null"])
        for score, text in _spans(w, offsets, context, longest):
            if example not in best or score > best[example][0]:
                best[example] = (score, text)
        if example not in best:
            best[example] = (float("-inf"), "")
    first: dict[int, int] = {}
    for f, example in enumerate(columns["example_id"]):
        first.setdefault(example, f)
    out.rows = sorted(best)  # the examples' rows, not each window's
    for example in out.rows:
        f = first[example]
        score, text = best[example]
        out.predictions.append(text if score > null[example] or not no_answer else "")
        out.references.append(columns["gold"][f])
        words = len(columns["context"][f].split())
        out.attributes.append({"context_words": words, "question_words": questions[f]})
    out.examples = len(best)


def _spans(
    window: dict[str, Any], offsets: list[list[int]], context: str, longest: int
) -> list[tuple[float, str]]:
    spans, n = [], len(offsets)  # positions past n are the batch's padding
    for s_score, s in window["starts"]:
        if s >= n or offsets[s][0] < 0:
            continue
        for e_score, e in window["ends"]:
            if e < s or e >= n or e - s + 1 > longest or offsets[e][0] < 0:
                continue
            spans.append((s_score + e_score, context[offsets[s][0] : offsets[e][1]]))
    return spans
