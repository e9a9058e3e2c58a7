"""The tasks hubtool trains, one module each (see ``base.Task`` for what a task owns).

Adding a task = adding one module with a ``Task`` subclass, listing it in ``TASKS`` (the order
is the order ``--task auto`` tries them in), and its tests.
"""

from __future__ import annotations

from hubtool.core.architectures import Fit, family_of, fit_for_task, heads_of, not_transformers
from hubtool.errors import UsageError
from hubtool.tasks.base import Checkpoint, Columns, Predictions, Task, metric
from hubtool.tasks.classification import TextClassification
from hubtool.tasks.fill_mask import FillMask
from hubtool.tasks.question_answering import QuestionAnswering
from hubtool.tasks.seq2seq import Summarization, Translation
from hubtool.tasks.text_generation import TextGeneration
from hubtool.tasks.token_classification import TokenClassification

TASKS: tuple[Task, ...] = (
    QuestionAnswering(),
    TextGeneration(),
    TokenClassification(),
    Translation(),
    Summarization(),
    TextClassification(),
    FillMask(),
)
BY_NAME = {t.name: t for t in TASKS}
NAMES = tuple(BY_NAME)

__all__ = [
    "BY_NAME",
    "NAMES",
    "TASKS",
    "Checkpoint",
    "Columns",
    "Predictions",
    "Task",
    "fit",
    "get",
    "infer",
    "metric",
]


def get(name: str) -> Task:
    """The task of that pipeline tag; a UsageError for one hubtool cannot train."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UsageError(
            f"hubtool cannot train {name!r} yet.", f"Tasks it trains: {', '.join(NAMES)}."
        ) from None


def fit(
    task: str,
    pipeline_tag: str | None,
    architectures: list[str],
    model_type: str | None,
    library: str | None = None,
) -> Fit:
    """Whether a checkpoint can serve ``task``: what ``finetune`` would do with it for the
    tasks hubtool trains (the task decides), the Hub's conventions for the others."""
    if task not in BY_NAME:
        return fit_for_task(task, pipeline_tag, architectures, model_type, library)
    if (refused := not_transformers(library, architectures)) is not None:
        return refused
    heads = heads_of(architectures)
    family = family_of(model_type, heads, pipeline_tag)
    checkpoint = Checkpoint(pipeline_tag, tuple(architectures), model_type, tuple(heads), family)
    return BY_NAME[task].fit(checkpoint)


def infer(columns: list[str], label_column: str | None, family: str | None = None) -> Task:
    """The first task that claims data with these columns (``--task auto``); plain text is
    masked-LM data for an encoder and causal-LM data for a decoder (``family``)."""
    task = next(t for t in TASKS if t.claims(columns, label_column))
    return BY_NAME["text-generation"] if task.name == "fill-mask" and family == "decoder" else task
