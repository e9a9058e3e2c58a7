"""What a task is, in one place: ``Task`` is the contract each module of ``hubtool.tasks``
fulfils, and the training loop, the evaluation, the card, ``ci init`` and search ask it
instead of branching on task names.

A task owns: which columns it reads (and whether ``--task auto`` should pick it), the row
checks, tokenization into model features, the collator, the model head, how evaluation
gathers predictions and which metrics it computes, how the card names it and what its widget
example and usage snippet look like, the default release requirement, and whether a
checkpoint can serve it (the search fit).
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from hubtool.core.architectures import Fit
from hubtool.errors import UsageError

METRICS_DIR = Path(__file__).resolve().parent.parent / "metrics"
Collate = Callable[[list[dict[str, Any]]], dict[str, Any]]


@dataclass(frozen=True)
class Columns:
    """The columns a task reads: the text (or tokens), an optional pair, the labels."""

    text: str
    pair: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """What search and info know of a checkpoint when judging whether it serves a task."""

    pipeline_tag: str | None
    architectures: tuple[str, ...]
    model_type: str | None
    heads: tuple[tuple[str, str, str], ...]  # (architecture, its task, its Auto class)
    family: str | None  # encoder, seq2seq, decoder or None


@dataclass
class Predictions:
    """Everything gathered from one pass over an evaluation split."""

    task: str
    predictions: list[Any] = field(default_factory=list)
    references: list[Any] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    # per example, what slices group by (question/context words, source/target tokens…)
    attributes: list[dict[str, int]] = field(default_factory=list)
    # per prediction, the split row it is of (slices group by the rows' columns)
    rows: list[int] = field(default_factory=list)
    examples: int = 0  # the split's size (fill-mask: blocks), counted once over processes
    multi_label: bool = False  # predictions are per-label probabilities, references 0/1
    threshold: float | None = None  # multi-label: the decision threshold compute() chose
    timing: dict[str, float] = field(default_factory=dict)  # seconds by phase (generation…)
    # evaluate modules that score generated texts against references (--eval-metrics)
    metric_modules: tuple[str, ...] = ()
    seconds: float = 0.0  # the whole pass

    @property
    def size(self) -> int:
        return len(self.predictions) or len(self.losses)


class Task(ABC):
    name: ClassVar[str]  # the Hub pipeline tag
    title: ClassVar[str]  # how the card names it
    auto_class: ClassVar[str]  # the transformers Auto class of its head
    best_metric: ClassVar[str]  # what picks the best model by default
    release_requirement: ClassVar[str]  # `hubtool ci init`'s default gate
    # widget example by language: text ({mask}: the mask token), or the widget's fields
    examples: ClassVar[dict[str, Any]]
    labelled: ClassVar[bool] = True  # reads a label column of classes
    predicts: ClassVar[bool] = True  # gathers a prediction per example (else only losses)
    per_token: ClassVar[bool] = False  # one label per token (else per example)
    # "completions" (masked-LM probes), "slices" (worst classes and lengths) or "generative"
    bias_probe: ClassVar[str] = "slices"
    pipeline_options: ClassVar[str] = ""  # extra arguments of the card's pipeline() snippet
    metric_names: ClassVar[dict[str, str]] = {}  # how the card names this task's metrics

    # -- data ------------------------------------------------------------------------------
    @abstractmethod
    def claims(self, columns: list[str], label_column: str | None) -> bool:
        """Whether ``--task auto`` should pick this task for data with these columns."""

    @abstractmethod
    def columns(self, columns: list[str], cfg: Any) -> Columns:
        """The columns to read, checked against those that exist (a UsageError otherwise)."""

    def check_rows(self, ds: Any, split: str, cols: Columns) -> None:
        """Refuse rows the task cannot learn from, naming the row."""
        for column in (cols.text, cols.pair):
            if column:
                check_texts(ds, column, split, self.per_token)

    @abstractmethod
    def tokenize(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        """(model features with a ``length`` column, examples truncated)."""

    @abstractmethod
    def collator(self, tokenizer: Any, cfg: Any, pad_multiple: int | None = None) -> Collate:
        """Turns feature rows into a padded batch (the ``length`` column dropped), padded to
        a multiple of ``pad_multiple`` tokens when given (compiled runs)."""

    def tokenize_eval(self, ds: Any, tokenizer: Any, cfg: Any, cols: Columns) -> tuple[Any, int]:
        """Features of a split that is evaluated (tasks that post-process predictions keep
        what they need to map them back to their examples)."""
        return self.tokenize(ds, tokenizer, cfg, cols)

    def preparation(self, cfg: Any, train: Any, cols: Columns, tokenizer: Any) -> dict[str, Any]:
        """How the data is prepared beyond the config's own values (resolved defaults,
        counts), for run.json and the card; set on the model's config by ``configure``."""
        return {}

    def configure(self, model: Any, preparation: dict[str, Any]) -> None:  # noqa: B027
        """Record on the model (its config, its generation config) what inference needs to
        know of the training data (nothing, unless the task says so)."""

    def evaluation_set(self, validation: Any, collate: Collate, seed: int) -> tuple[Any, Collate]:
        """The validation features and collator evaluation uses (fixed for every pass)."""
        return validation, collate

    def best_for(self, multi_label: bool) -> str:
        """The metric that picks the best model (multi-label data may choose another)."""
        return self.best_metric

    def release_for(self, multi_label: bool) -> str:
        """`hubtool ci init`'s default gate (on a metric the run computes)."""
        return self.release_requirement

    def check_model(self, model: Any, cfg: Any, preparation: dict[str, Any]) -> None:
        """Refuse a model that cannot train the way the settings ask, before training."""
        if getattr(cfg, "eval_metrics", None):
            raise UsageError(
                f"--eval-metrics scores generated text against references; {self.name} "
                "computes its own metrics.",
                "Drop --eval-metrics (it is for text-generation).",
            )

    def train_faster(self, model: Any, batch: dict[str, Any]) -> str | None:
        """Install a cheaper training forward that gives the same loss on ``batch`` (checked
        there); a line for run.json saying what it is, or None when the model is unchanged."""
        return None

    # -- evaluation ------------------------------------------------------------------------
    def predict(
        self, accelerator: Any, model: Any, loader: Any, out: Predictions, cfg: Any, tokenizer: Any
    ) -> None:
        """One pass over ``loader`` without gradients, each batch gathered into ``out``."""
        import torch

        for batch in loader:
            with torch.inference_mode():
                outputs = model(**batch)
            self.gather(accelerator, outputs, batch, out)

    def gather(
        self, accelerator: Any, outputs: Any, batch: dict[str, Any], out: Predictions
    ) -> None:
        """Add one batch's predictions to ``out``, each example counted once (what the
        default ``predict`` calls; a task with a ``predict`` of its own needs none)."""
        raise NotImplementedError(f"{type(self).__name__} gathers in its predict()")

    @abstractmethod
    def compute(self, p: Predictions, label_names: list[str] | None) -> dict[str, Any]:
        """The task's metrics (scalars plus details) for gathered predictions."""

    def slices(self, p: Predictions) -> list[dict[str, Any]]:
        """Results by input length for the card; none unless the task measures them."""
        return []

    def row_numbers(self, raw: Any, features: Any, cols: Columns) -> list[int] | None:
        """The row of ``raw`` (the split before tokenization) each evaluation feature comes
        from, so that predictions can be grouped by the rows' columns; None where they
        cannot (blocks of joined text). By default the features are the rows, in order."""
        if len(features) != len(raw):
            raise AssertionError(f"{self.name}: {len(features)} features of {len(raw)} rows")
        return list(range(len(features)))

    def example_stats(
        self, p: Predictions, label_names: list[str] | None
    ) -> dict[str, tuple[Any, Callable[[Any], float]]]:
        """Per metric, what it sums over examples (an array, a row per prediction) and the
        metric of a sum, so that any group of examples (a slice, a bootstrap draw) is scored
        by adding rows: the sum over every example gives the split's own metric. None
        unless the task's metrics add up that way."""
        return {}

    def slice_groups(self, p: Predictions, label_names: list[str] | None) -> dict[str, list[str]]:
        """Factors the predictions themselves give (the true label), per prediction."""
        return {}

    def baselines(
        self, p: Predictions, label_names: list[str] | None, train: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """What trivial predictors score on the same examples, with the same metrics (a
        reader sees what training bought); ``train``: the training split's label ``counts``
        and ``rows``. None unless the task has such predictors."""
        return []

    # -- card and search -------------------------------------------------------------------
    def data_settings(self, config: dict[str, Any]) -> dict[str, Any] | None:
        """Settings of the run's data preparation the card reports (None: nothing special)."""
        return None

    def data_example(self, row: dict[str, Any], cols: Columns, cfg: Any) -> Any:
        """The widget example made of one validation row, in the shape of ``examples``'
        values (None: none can be made of it, the task's own stays). Text has its braces
        doubled: the card formats it with the mask token."""
        if cols.pair is not None:  # a pair of texts: the widget takes one
            return None
        value = row_value(row, cols.text)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):  # words
            value = " ".join(value)
        return example_text(value)

    def card_example(self, example: Any, preparation: dict[str, Any]) -> Any:
        """The card's example as this run's model takes it (a chat model: messages)."""
        return example

    def widget(self, example: Any) -> dict[str, Any]:
        """The card's widget entry for the task's example."""
        return example if isinstance(example, dict) else {"text": example}

    def usage(self, repo: str, example: Any, options: str) -> str:
        """Python that loads the published repo and runs the example (``repo`` and the
        example's strings are written as literals; ``options``: more pipeline arguments)."""
        return (
            "from transformers import pipeline\n\n"
            f"pipe = pipeline({literal(self.name)}, model={literal(repo)}{options})\n"
            f"print(pipe({literal(example)}))\n"
        )

    # family -> how a checkpoint of that family without the task's head is trained for it
    families: ClassVar[dict[str, str]] = {
        "encoder": "{arch} is a pretrained encoder: a new {task} head will be trained on your data"
    }

    def ready(self, checkpoint: Checkpoint) -> Fit | None:
        """``ready`` when the checkpoint already has this task's head (or the Hub lists it
        for the task); None otherwise."""
        for arch, task, auto in checkpoint.heads:
            if task == self.name:
                return Fit("ready", f"{arch} has a trained {self.name} head ({auto})")
        if checkpoint.pipeline_tag == self.name:
            return Fit("ready", f"the Hub lists it for {self.name}")
        return None

    def family_fit(
        self, checkpoint: Checkpoint, family: str, new_head: str, kinds: dict[str, str], uses: str
    ) -> Fit:
        """For a checkpoint without the task's head: ``base`` when it is of ``family`` (it
        "is ``new_head``"), else ``no``, saying what it is (``kinds`` by family, ``""`` for
        any other) and what the task trains (``uses``)."""
        name = checkpoint.heads[0][0] if checkpoint.heads else checkpoint.model_type
        arch = name or "this architecture"
        if checkpoint.family == family:
            return Fit("base", f"{arch} is {new_head}")
        kind = kinds.get(checkpoint.family or "", kinds[""])
        return Fit("no", f"{arch} is {kind}: hubtool trains {self.name} with {uses}")

    def fit(self, checkpoint: Checkpoint) -> Fit:
        """Whether (and how) ``hubtool finetune`` can train a checkpoint for this task."""
        if (ready := self.ready(checkpoint)) is not None:
            return ready
        name = checkpoint.heads[0][0] if checkpoint.heads else checkpoint.model_type
        how = self.families.get(checkpoint.family or "")
        if how is not None:
            return Fit("base", how.format(arch=name or "this architecture", task=self.name))
        return Fit("no", f"{name or 'this architecture'} cannot serve {self.name}")


# -- shared helpers --------------------------------------------------------------------------
def literal(text: str) -> str:
    """A double-quoted Python string literal."""
    import json

    return json.dumps(text, ensure_ascii=False)


@functools.cache
def metric(name: str) -> Any:
    """A shipped evaluate module by name; any other evaluate id is loaded as evaluate does
    (from the Hub, or a local script path); one that cannot be loaded is a UsageError."""
    import evaluate

    local = METRICS_DIR / name
    try:
        return evaluate.load(str(local) if local.is_dir() else name)
    except Exception as exc:  # evaluate raises connection, file and import errors alike
        shipped = ", ".join(sorted(p.name for p in METRICS_DIR.iterdir() if p.is_dir()))
        raise UsageError(
            f"The evaluate module {name!r} cannot be loaded: {str(exc).splitlines()[0][:200]}",
            f"Shipped modules (always available): {shipped}. Others come from the Hub "
            "(HF_ENDPOINT must reach one that has them) or a local folder with the script.",
        ) from None


def buckets(values: list[int], edges: tuple[int, ...]) -> list[tuple[str, list[int]]]:
    """(range, indices) of the values in each bucket ``(previous edge, edge]``, and beyond
    the last edge; empty buckets left out. Ranges read ``1-16``, ``17-32``, ``>256``."""
    out, low = [], 0
    for high in (*edges, None):
        idx = [i for i, n in enumerate(values) if low < n and (high is None or n <= high)]
        if idx:
            out.append((f"{low + 1}-{high}" if high is not None else f">{low}", idx))
        low = high or low
    return out


LENGTH_BUCKETS = (16, 32, 64, 128, 256)  # tokens: the card's input-length slices


def bucket_names(values: list[int], edges: tuple[int, ...]) -> list[str]:
    """Each value's bucket as ``buckets`` names it (``1-16``, ``>256``)."""
    names = [""] * len(values)
    for span, idx in buckets(values, edges):
        for i in idx:
            names[i] = span
    return names


EXAMPLE_CHARS = 500  # a widget example: read at a glance


def row_value(row: dict[str, Any], column: str) -> Any:
    """A row's value of ``column``; ``translation.fr`` reads the ``fr`` text of the pair."""
    if column in row or "." not in column:
        return row.get(column)
    base, key = column.split(".", 1)
    pair = row.get(base)
    return pair.get(key) if isinstance(pair, dict) else None


def clip_text(value: Any) -> str | None:
    """A text for the widget, on one line, clipped at a word boundary (None: no text)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    if len(text) > EXAMPLE_CHARS:
        text = text[:EXAMPLE_CHARS].rsplit(" ", 1)[0]
    return text


def example_text(value: Any) -> str | None:
    """``clip_text`` with braces doubled: the card formats a text example with the mask."""
    text = clip_text(value)
    return text.replace("{", "{{").replace("}", "}}") if text else None


def without_length(collate: Any) -> Collate:
    """Wrap a collator so the ``length`` column (used for grouping) never reaches the model."""
    return lambda features: collate(
        [{k: v for k, v in f.items() if k != "length"} for f in features]
    )


def ratio(summed: Any) -> float:
    """A metric that is one sum over another, from summed ``example_stats`` (0 where the
    second sum is 0)."""
    return float(summed[0] / summed[1]) if summed[1] else 0.0


def mean_stats(module: str, p: Predictions, names: tuple[str, ...]) -> dict[str, Any]:
    """``example_stats`` of metrics that are means of the per-example scores an ``evaluate``
    module of ours gives with ``per_example=True``."""
    import numpy as np

    rows = metric(module).compute(
        predictions=p.predictions, references=p.references, per_example=True
    )
    out = {}
    for name in names:
        scores = np.asarray(rows[name], dtype=float)
        out[name] = (np.stack([scores, np.ones_like(scores)], axis=1), ratio)
    return out


def same_output(
    model: Any, batch: dict[str, Any], pick: Callable[[Any], Any], stock: Callable[..., Any]
) -> bool:
    """Whether ``model``'s forward gives ``stock``'s output (``pick`` of it) on ``batch``, in
    eval mode without gradients: the check a faster training forward passes before it is
    used. An exception in the new forward counts as a difference. A base quantized by
    bitsandbytes is never checked (so never given a new forward): on a CPU its first eval-mode
    forward repacks the weights into a layout for inference that training cannot use."""
    import torch

    if getattr(model, "is_quantized", False):
        return False
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return bool(
                torch.allclose(
                    pick(model.forward(**batch)), pick(stock(**batch)), rtol=1e-4, atol=1e-5
                )
            )
    except Exception:  # e.g. a head that reads more than the new forward computes
        return False
    finally:
        model.train(was_training)


def lengths(batch: dict[str, list[Any]]) -> list[int]:
    return [len(ids) for ids in batch["input_ids"]]


def check_texts(ds: Any, column: str, split: str, per_token: bool) -> None:
    """Every row holds text (a list of words for token tasks); else the row is named."""
    for i, value in enumerate(ds[column]):
        ok = (
            isinstance(value, list) and all(isinstance(t, str) for t in value)
            if per_token
            else isinstance(value, str)
        )
        if not ok:
            raise UsageError(
                f"Row {i} of split {split!r} has a non-text value in column "
                f"{column!r}: {value!r:.60}.",
                "Clean the data or choose another --text-column.",
            )


def missing(column: str, what: str, columns: list[str]) -> UsageError:
    return UsageError(
        f"The {what} column {column!r} does not exist.", f"Columns: {', '.join(columns)}."
    )


def texts_of(rows: Any, column: str) -> list[Any]:
    """A column's values; ``translation.fr`` reads the ``fr`` text of each pair."""
    names = rows.column_names if hasattr(rows, "column_names") else list(rows)
    if column in names or "." not in column:
        return list(rows[column])
    base, key = column.split(".", 1)
    values = []
    for i, pair in enumerate(rows[base]):
        if not isinstance(pair, dict) or key not in pair:
            have = ", ".join(sorted(pair)) if isinstance(pair, dict) else type(pair).__name__
            raise UsageError(
                f"Row {i} of the {base!r} column has no {key!r} text (it has: {have}).",
                "Check --source-lang and --target-lang against the data's language codes.",
            )
        values.append(pair[key])
    return values


def holds_lists(ds: Any, column: str) -> bool:
    """Whether the column holds a list per row (of labels: multi-label classification)."""
    import datasets

    return isinstance(ds.features[column], (datasets.Sequence, datasets.List, list))


def check_given(columns: list[str], cfg: Any) -> None:
    """The columns the user named exist."""
    for given, what in (
        (cfg.text_column, "text"),
        (cfg.text_pair_column, "text pair"),
        (cfg.label_column, "label"),
    ):
        if given and given not in columns:
            raise missing(given, what, columns)


def mean_loss(p: Predictions) -> dict[str, float]:
    import numpy as np

    return {"loss": float(np.mean(p.losses))} if p.losses else {}


def example_losses(logits: Any, labels: Any) -> Any:
    """Mean cross-entropy of each example (over its labelled tokens for token tasks)."""
    import torch.nn.functional as F

    if logits.dim() == 2:
        return F.cross_entropy(logits.float(), labels, reduction="none").detach()
    flat = F.cross_entropy(
        logits.float().transpose(1, 2), labels, reduction="none", ignore_index=-100
    )
    kept = (labels != -100).sum(dim=-1).clamp(min=1)
    return (flat.sum(dim=-1) / kept).detach()
