"""Summarization and translation with encoder-decoder checkpoints (T5, BART, Marian, mT5…):
a source and a target text per example (for translation also a ``translation`` column of
{language: text} pairs), the T5 task prefix where the checkpoint needs one, labels padded
with -100, generation for evaluation (``num_beams``, ``max_new_tokens``) batched by length,
ROUGE (summarization) or sacreBLEU and chrF (translation) from shipped evaluate modules, and
how long generation took and what it produced."""

from __future__ import annotations

import re
import time
from abc import abstractmethod
from typing import Any, ClassVar

from hubtool.core.architectures import Fit
from hubtool.core.languages import find_language
from hubtool.errors import UsageError
from hubtool.tasks.base import (
    LENGTH_BUCKETS,
    Checkpoint,
    Collate,
    Columns,
    Predictions,
    Task,
    bucket_names,
    buckets,
    literal,
    mean_loss,
    mean_stats,
    metric,
    missing,
    texts_of,
    without_length,
)

T5_PREFIXED = frozenset({"t5"})  # trained with task prefixes (mT5, umT5, Flan-T5 without)


class Seq2Seq(Task):
    """What summarization and translation share; each subclass says its columns and scores."""

    auto_class = "AutoModelForSeq2SeqLM"
    labelled = False  # targets are texts, not classes
    sources: ClassVar[tuple[str, ...]]  # usual source column names
    targets: ClassVar[tuple[str, ...]]
    score_details: ClassVar[tuple[str, ...]] = ()  # parts of a score reported as details

    # -- data ----------------------------------------------------------------------------------
    def claims(self, columns: list[str], label_column: str | None) -> bool:
        return any(c in columns for c in self.sources) and any(c in columns for c in self.targets)

    def columns(self, columns: list[str], cfg: Any) -> Columns:
        source = cfg.source_column or cfg.text_column
        target = cfg.target_column or cfg.label_column
        for given, what in ((source, "source"), (target, "target")):
            if given and given not in columns and given.split(".")[0] not in columns:
                raise missing(given, what, columns)  # "translation.fr": one side of pairs
        source = source or next((c for c in self.sources if c in columns), None)
        target = target or next((c for c in self.targets if c in columns), None)
        if source is None or target is None:
            raise UsageError(
                f"{self.title} needs a source and a target text column.",
                f"Columns: {', '.join(columns)}. Use --source-column and --target-column.",
            )
        return Columns(source, None, target)

    def check_rows(self, ds: Any, split: str, cols: Columns) -> None:
        for column, what in ((cols.text, "source"), (cols.label, "target")):
            for i, value in enumerate(texts_of(ds, str(column))):
                if not isinstance(value, str) or not value.strip():
                    shown = "an empty" if isinstance(value, str) else f"a non-text ({value!r:.40})"
                    raise UsageError(
                        f"Row {i} of split {split!r} has {shown} {what} in {column!r}.",
                        f"Every example needs a {what} text: remove the row or fill it in.",
                    )

    def prefix(self, cfg: Any) -> str:
        """The text put before every source: the user's, the one the model was trained with
        (a hubtool model's config records it), or the T5 task prefix."""
        if cfg.source_prefix is not None:
            return str(cfg.source_prefix)
        config = _model_config(cfg.model)
        saved = getattr(config, "source_prefix", None)
        if isinstance(saved, str):
            return saved
        return self.t5_prefix(cfg) if getattr(config, "model_type", None) in T5_PREFIXED else ""

    def t5_prefix(self, cfg: Any) -> str:
        return "summarize: "

    def preparation(self, cfg: Any, train: Any, cols: Columns, tokenizer: Any) -> dict[str, Any]:
        prepared: dict[str, Any] = {"source_prefix": self.prefix(cfg)}
        codes = set_language_codes(tokenizer, cfg, self.name)
        if codes is not None:  # mBART, NLLB, M2M100: generation starts with the target's code
            prepared["language_codes"] = {"source": codes[0], "target": codes[1]}
            prepared["forced_bos_token_id"] = int(tokenizer.convert_tokens_to_ids(codes[1]))
        return prepared

    def configure(self, model: Any, preparation: dict[str, Any]) -> None:
        model.config.source_prefix = preparation.get("source_prefix") or ""
        forced = preparation.get("forced_bos_token_id")
        if forced is not None and getattr(model, "generation_config", None) is not None:
            model.generation_config.forced_bos_token_id = forced  # saved in generation_config

    def tokenize(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        set_language_codes(tokenizer, cfg, self.name)
        prefix = self.prefix(cfg)
        source_limit, target_limit = int(cfg.max_length or 128), int(cfg.max_target_length)

        def encode(batch: dict[str, list[Any]]) -> dict[str, Any]:
            sources = [prefix + s for s in texts_of(batch, str(cols.text))]
            targets = texts_of(batch, str(cols.label))
            full = tokenizer(sources, truncation=False, verbose=False)["input_ids"]
            full_targets = tokenizer(text_target=targets, truncation=False, verbose=False)
            out = tokenizer(sources, truncation=True, max_length=source_limit)
            labels = tokenizer(text_target=targets, truncation=True, max_length=target_limit)
            out["labels"] = labels["input_ids"]
            out["length"] = [len(ids) for ids in out["input_ids"]]
            out["truncated"] = [
                len(a) > source_limit or len(b) > target_limit
                for a, b in zip(full, full_targets["input_ids"], strict=True)
            ]
            return out

        mapped = ds.map(encode, batched=True, remove_columns=ds.column_names, desc="Tokenizing")
        truncated = sum(mapped["truncated"])
        return mapped.remove_columns(["truncated"]), truncated

    def collator(self, tokenizer: Any, cfg: Any, pad_multiple: int | None = None) -> Collate:
        from transformers import DataCollatorForSeq2Seq

        return without_length(
            DataCollatorForSeq2Seq(
                tokenizer, label_pad_token_id=-100, pad_to_multiple_of=pad_multiple
            )
        )

    def data_settings(self, config: dict[str, Any]) -> dict[str, Any] | None:
        keys = ("source_prefix", "max_target_length", "num_beams", "max_new_tokens")
        return {k: config.get(k) for k in keys}

    # -- evaluation --------------------------------------------------------------------------
    def predict(
        self, accelerator: Any, model: Any, loader: Any, out: Predictions, cfg: Any, tokenizer: Any
    ) -> None:
        """The loss on the references, then generated outputs, decoded on every process."""
        import torch

        generator = accelerator.unwrap_model(model)
        options = generation_options(generator, cfg)
        seconds = {"forward": 0.0, "generation": 0.0}
        for batch in loader:
            start = time.perf_counter()
            with torch.inference_mode():
                outputs = model(**batch)
                losses = _example_losses(outputs.logits, batch["labels"])
                middle = time.perf_counter()
                generated = generator.generate(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **options
                )
            seconds["forward"] += middle - start
            seconds["generation"] += time.perf_counter() - middle
            self._gather(accelerator, tokenizer, generated, batch, losses, out)
        out.timing = seconds

    def _gather(
        self,
        accelerator: Any,
        tokenizer: Any,
        generated: Any,
        batch: dict[str, Any],
        losses: Any,
        out: Predictions,
    ) -> None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        generated = accelerator.pad_across_processes(generated, dim=1, pad_index=pad)
        labels = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=-100)
        sources = batch["attention_mask"].sum(dim=-1)
        generated, labels, sources, losses = accelerator.gather_for_metrics(
            (generated, labels, sources, losses)
        )
        labels = labels.masked_fill(labels == -100, pad)
        predictions = tokenizer.batch_decode(generated, skip_special_tokens=True)
        references = tokenizer.batch_decode(labels, skip_special_tokens=True)
        out.predictions += [p.strip() for p in predictions]
        out.references += [r.strip() for r in references]
        out.losses += losses.float().tolist()
        out.lengths += sources.tolist()
        special = set(tokenizer.all_special_ids)
        for row, ref in zip(generated.tolist(), labels.tolist(), strict=True):
            out.attributes.append(
                {
                    "generated_tokens": sum(1 for t in row if t not in special),
                    "target_tokens": sum(1 for t in ref if t not in special),
                }
            )

    def compute(self, p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
        result = dict(self.scores(p.predictions, p.references))
        details = {k: result.pop(k) for k in self.score_details if k in result}
        if details:  # how the score came about: details, not scores of their own
            result[f"{self.best_metric}_details"] = details
        result["generation"] = generation_summary(p)
        return {**result, **mean_loss(p)}

    @abstractmethod
    def scores(self, predictions: list[str], references: list[str]) -> dict[str, Any]:
        """The task's scores for generated texts against their references."""

    def slice_groups(self, p: Predictions, label_names: list[str] | None) -> dict[str, list[str]]:
        return {"source tokens": bucket_names(p.lengths, LENGTH_BUCKETS)}

    def slices(self, p: Predictions) -> list[dict[str, Any]]:
        """The task's main score by source length (tokens)."""
        rows = []
        for span, idx in buckets(p.lengths, LENGTH_BUCKETS):
            scores = self.scores([p.predictions[i] for i in idx], [p.references[i] for i in idx])
            rows.append(
                {"tokens": span, "examples": len(idx), self.best_metric: scores[self.best_metric]}
            )
        return rows

    # -- card and search -----------------------------------------------------------------------
    def usage(self, repo: str, example: Any, options: str) -> str:
        """transformers 5 has no summarization or translation pipeline: generate directly."""
        return (
            "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
            f"tokenizer = AutoTokenizer.from_pretrained({literal(repo)})\n"
            f"model = AutoModelForSeq2SeqLM.from_pretrained({literal(repo)})\n"
            f'inputs = tokenizer({literal(example)}, return_tensors="pt")\n'
            "output = model.generate(**inputs, max_new_tokens=64)\n"
            "print(tokenizer.decode(output[0], skip_special_tokens=True))\n"
        )

    def fit(self, checkpoint: Checkpoint) -> Fit:
        if (ready := self.ready(checkpoint)) is not None:
            return ready
        for arch, task, auto in checkpoint.heads:
            if task in ("text2text-generation", "translation", "summarization"):
                return Fit(
                    "ready",
                    f"{arch} is a trained sequence-to-sequence model ({auto}): fine-tuning for "
                    f"{self.name} keeps its language-model head",
                )
        return self.family_fit(
            checkpoint,
            "seq2seq",
            f"an encoder-decoder without its language-model head: a new one is trained for "
            f"{self.name}",
            {
                "decoder": "a decoder-only model",
                "encoder": "an encoder without a decoder",
                "": "not an encoder-decoder model",
            },
            "encoder-decoder checkpoints (T5, BART, Marian, mT5…)",
        )


class Summarization(Seq2Seq):
    name = "summarization"
    title = "Summarization"
    best_metric = "rougeL"
    release_requirement = "rougeL>=0.20"
    sources: ClassVar[tuple[str, ...]] = ("document", "article", "text", "source", "dialogue")
    targets: ClassVar[tuple[str, ...]] = ("summary", "highlights", "headline", "abstract")
    examples: ClassVar[dict[str, Any]] = {
        "en": "The city council met on Tuesday and voted to extend the river park by two "
        "kilometres, after residents asked for more green space near the old docks.",
        "fr": "Le conseil municipal s'est réuni mardi et a voté l'extension du parc de deux "
        "kilomètres, à la demande des habitants du quartier des anciens docks.",
    }
    metric_names: ClassVar[dict[str, str]] = {
        "rouge1": "ROUGE-1",
        "rouge2": "ROUGE-2",
        "rougeL": "ROUGE-L",
        "rougeLsum": "ROUGE-Lsum",
    }

    def scores(self, predictions: list[str], references: list[str]) -> dict[str, Any]:
        return dict(metric("rouge_scores").compute(predictions=predictions, references=references))

    def example_stats(
        self, p: Predictions, label_names: list[str] | None
    ) -> dict[str, tuple[Any, Any]]:
        """ROUGE-L and ROUGE-1: means of each example's F-measure."""
        return mean_stats("rouge_scores", p, ("rougeL", "rouge1"))


class Translation(Seq2Seq):
    name = "translation"
    title = "Translation"
    best_metric = "bleu"
    release_requirement = "bleu>=20"
    sources: ClassVar[tuple[str, ...]] = ("source", "src")
    targets: ClassVar[tuple[str, ...]] = ("target", "tgt")
    examples: ClassVar[dict[str, Any]] = {
        "en": "The weather is lovely today, so we will walk to the museum.",
        "fr": "Il fait très beau aujourd'hui, alors nous irons au musée à pied.",
    }
    metric_names: ClassVar[dict[str, str]] = {"bleu": "sacreBLEU", "chrf": "chrF"}
    score_details = ("bleu_precisions", "brevity_penalty", "length_ratio")

    def claims(self, columns: list[str], label_column: str | None) -> bool:
        return "translation" in columns

    def columns(self, columns: list[str], cfg: Any) -> Columns:
        if not (cfg.source_lang and cfg.target_lang):
            raise UsageError(
                "Translation needs the language pair: --source-lang and --target-lang.",
                "Give both codes (en, fr, de…): the card and the Hub's tags record them, "
                "and T5 checkpoints need them for their task prefix.",
            )
        if (
            "translation" in columns
            and not (cfg.source_column or cfg.text_column)
            and not (cfg.target_column or cfg.label_column)
        ):
            return Columns(f"translation.{cfg.source_lang}", None, f"translation.{cfg.target_lang}")
        return super().columns(columns, cfg)

    def t5_prefix(self, cfg: Any) -> str:
        source, target = (_language_name(c) for c in (cfg.source_lang, cfg.target_lang))
        return f"translate {source} to {target}: "

    def scores(self, predictions: list[str], references: list[str]) -> dict[str, Any]:
        return dict(
            metric("sacrebleu_chrf").compute(
                predictions=predictions, references=[[r] for r in references]
            )
        )

    def example_stats(
        self, p: Predictions, label_names: list[str] | None
    ) -> dict[str, tuple[Any, Any]]:
        """Corpus BLEU and chrF from each sentence's n-gram statistics, as sacreBLEU sums
        them (its own bootstrap resamples the same statistics)."""
        import numpy as np
        import sacrebleu

        rows = metric("sacrebleu_chrf").compute(
            predictions=p.predictions, references=[[r] for r in p.references], per_example=True
        )
        bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
        return {
            "bleu": (np.asarray(rows["bleu_stats"], dtype=float), _corpus(bleu)),
            "chrf": (np.asarray(rows["chrf_stats"], dtype=float), _corpus(chrf)),
        }


# -- shared helpers -------------------------------------------------------------------------
def _corpus(scorer: Any) -> Any:
    """A sacreBLEU corpus score of summed sentence statistics."""
    return lambda summed: float(scorer._compute_score_from_stats([round(v) for v in summed]).score)


def generation_options(model: Any, cfg: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "num_beams": int(cfg.num_beams),
        "max_new_tokens": int(cfg.max_new_tokens or cfg.max_target_length),
        "do_sample": False,
    }
    forced = getattr(getattr(model, "generation_config", None), "forced_bos_token_id", None)
    if forced is not None:
        options["forced_bos_token_id"] = forced
    if int(cfg.num_beams) > 1:
        options["early_stopping"] = True
    return options


def generation_summary(p: Predictions) -> dict[str, Any]:
    """Generated against reference lengths, and the share of evaluation spent generating."""
    import numpy as np

    generated = [a["generated_tokens"] for a in p.attributes] or [0]
    targets = [a["target_tokens"] for a in p.attributes] or [0]
    timing = p.timing
    total = p.seconds or sum(timing.values())
    return {
        "mean_generated_tokens": float(np.mean(generated)),
        "mean_reference_tokens": float(np.mean(targets)),
        "max_generated_tokens": int(max(generated)),
        "empty_outputs": sum(1 for x in p.predictions if not x),
        "generation_seconds": round(timing.get("generation", 0.0), 3),
        "generation_share": round(timing.get("generation", 0.0) / total, 3) if total else None,
    }


def _model_config(model: str) -> Any:
    """The checkpoint's config, or None (loading the model says why it cannot be read)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model)
    except (OSError, ValueError):
        return None


def _example_losses(logits: Any, labels: Any) -> Any:
    """Each example's mean cross-entropy over its target tokens, one example at a time (a
    whole batch in fp32 would be batch × length × vocabulary floats: gigabytes for mT5)."""
    import torch
    import torch.nn.functional as F

    return torch.stack(
        [
            F.cross_entropy(row.float(), target, ignore_index=-100)
            for row, target in zip(logits, labels, strict=True)
        ]
    ).detach()


LANGUAGE_CODE = re.compile(r"^(?:([a-z]{2,3})_[A-Z][a-z]{3}|([a-z]{2})_[A-Z]{2}|__([a-z]{2,3})__)$")


def language_codes(tokenizer: Any) -> list[str]:
    """The tokenizer's language codes (NLLB eng_Latn, mBART en_XX, M2M100 __en__); none for
    tokenizers that do not mark languages (T5, BART, Marian)."""
    if getattr(tokenizer, "src_lang", None) is None and not hasattr(tokenizer, "lang_code_to_id"):
        return []
    return sorted(t for t in tokenizer.all_special_tokens if LANGUAGE_CODE.match(t))


def code_for(codes: list[str], given: str) -> str:
    """The tokenizer's code for a language given as an ISO code, a name, or the code itself."""
    if given in codes:
        return given
    lang = find_language(given)
    names = {lang.code, lang.iso3} if lang else {given.lower()}
    found = [c for c in codes if _code_language(c) in names]
    if len(found) == 1:
        return found[0]
    what = lang.name if lang else repr(given)
    if found:
        raise UsageError(
            f"This tokenizer has several codes for {what}: {', '.join(found)}.",
            "Give the one the data is written in as the language (--source-lang/--target-lang).",
        )
    raise UsageError(
        f"This tokenizer has no language code for {what}.",
        f"Its codes: {', '.join(codes[:40])}{'…' if len(codes) > 40 else ''}.",
    )


def _code_language(code: str) -> str | None:
    """The ISO part of a tokenizer's language code (eng_Latn -> eng, __en__ -> en)."""
    match = LANGUAGE_CODE.match(code)
    return next((g for g in match.groups() if g), None) if match else None


def set_language_codes(tokenizer: Any, cfg: Any, task: str) -> tuple[str, str] | None:
    """Set the tokenizer's source and target codes from --source-lang/--target-lang (for
    summarization the data's one language); None for tokenizers without codes."""
    codes = language_codes(tokenizer)
    if not codes:
        return None
    source = cfg.source_lang
    target = cfg.target_lang or (source if task == "summarization" else None)
    if not source or not target:
        raise UsageError(
            f"This checkpoint's tokenizer ({type(tokenizer).__name__}) marks languages with "
            f"codes of its own, so {task} needs the data's language.",
            "Pass --source-lang (and for translation --target-lang): an ISO code such as en "
            "or fr, or the tokenizer's own code (eng_Latn, en_XX).",
        )
    pair = (code_for(codes, source), code_for(codes, target))
    tokenizer.src_lang, tokenizer.tgt_lang = pair
    return pair


def _language_name(code: str) -> str:
    """English name of a language code (T5's prefixes name languages: "English")."""
    found = find_language(code)
    return found.name if found else code
