"""What a checkpoint's architecture can do: the mapping shared by the local Hub (which
derives a pipeline tag from ``config.json`` as the Hub does) and by search (which says
whether a checkpoint can serve a task)."""

from __future__ import annotations

# Architecture class-name suffix -> (pipeline tag, transformers Auto class). Longest first.
ARCHITECTURE_HEADS: tuple[tuple[str, str, str], ...] = (
    ("ForSequenceClassification", "text-classification", "AutoModelForSequenceClassification"),
    ("ForTokenClassification", "token-classification", "AutoModelForTokenClassification"),
    ("ForQuestionAnswering", "question-answering", "AutoModelForQuestionAnswering"),
    ("ForConditionalGeneration", "text2text-generation", "AutoModelForSeq2SeqLM"),
    ("ForImageClassification", "image-classification", "AutoModelForImageClassification"),
    ("ForMultipleChoice", "multiple-choice", "AutoModelForMultipleChoice"),
    ("ForMaskedLM", "fill-mask", "AutoModelForMaskedLM"),
    ("ForPreTraining", "fill-mask", "AutoModelForPreTraining"),
    ("WithLMHeadModel", "text2text-generation", "AutoModelForSeq2SeqLM"),
    ("ForCausalLM", "text-generation", "AutoModelForCausalLM"),
    ("LMHeadModel", "text-generation", "AutoModelForCausalLM"),
    ("Model", "feature-extraction", "AutoModel"),
)


def head_of(architecture: str) -> tuple[str, str] | None:
    """(pipeline tag, Auto class) that an architecture class name implies, or None."""
    for suffix, task, auto in ARCHITECTURE_HEADS:
        if architecture.endswith(suffix):
            return task, auto
    return None
