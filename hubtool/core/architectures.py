"""What a checkpoint's architecture can do: the mapping shared by the local Hub (which
derives a pipeline tag from ``config.json`` as the Hub does) and by search (which says
whether a checkpoint can serve a task, and how)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from hubtool.errors import UsageError

# Architecture class-name suffix -> (pipeline tag, transformers Auto class). Longest first.
ARCHITECTURE_HEADS: tuple[tuple[str, str, str], ...] = (
    ("T5WithLMHeadModel", "text2text-generation", "AutoModelForSeq2SeqLM"),
    ("ElectraForPreTraining", "feature-extraction", "AutoModel"),  # a discriminator, no MLM
    ("ForSequenceClassification", "text-classification", "AutoModelForSequenceClassification"),
    ("ForTokenClassification", "token-classification", "AutoModelForTokenClassification"),
    ("ForQuestionAnswering", "question-answering", "AutoModelForQuestionAnswering"),
    ("ForConditionalGeneration", "text2text-generation", "AutoModelForSeq2SeqLM"),
    ("MTModel", "translation", "AutoModelForSeq2SeqLM"),  # MarianMTModel, trained translators
    ("EncoderDecoderModel", "text2text-generation", "AutoModelForSeq2SeqLM"),  # BERT2BERT…
    ("ForImageClassification", "image-classification", "AutoModelForImageClassification"),
    ("ForMultipleChoice", "multiple-choice", "AutoModelForMultipleChoice"),
    ("ForMaskedLM", "fill-mask", "AutoModelForMaskedLM"),
    ("ForPreTraining", "fill-mask", "AutoModelForPreTraining"),
    ("WithLMHeadModel", "fill-mask", "AutoModelWithLMHead"),
    ("ForCausalLM", "text-generation", "AutoModelForCausalLM"),
    ("LMHeadModel", "text-generation", "AutoModelForCausalLM"),
    ("Model", "feature-extraction", "AutoModel"),
)

# The Hub's pipeline tags (tasks).
PIPELINE_TAGS = tuple(
    """
text-classification token-classification table-question-answering question-answering
zero-shot-classification translation summarization feature-extraction text-generation
text2text-generation fill-mask sentence-similarity text-ranking text-retrieval multiple-choice
text-to-speech text-to-audio automatic-speech-recognition audio-to-audio audio-classification
voice-activity-detection depth-estimation image-classification object-detection
image-segmentation text-to-image image-to-text image-to-image image-to-video
unconditional-image-generation video-classification reinforcement-learning robotics
tabular-classification tabular-regression table-to-text time-series-forecasting text-to-video
visual-question-answering document-question-answering zero-shot-image-classification graph-ml
mask-generation zero-shot-object-detection text-to-3d image-to-3d image-feature-extraction
video-text-to-text image-text-to-text any-to-any keypoint-detection visual-document-retrieval
""".split()
)

# Text encoders pretrained as masked language models: they take any new text head.
MLM_ENCODERS = frozenset(
    """
bert roberta camembert xlm-roberta xlm-roberta-xl distilbert albert flaubert xlm mpnet
longformer big_bird megatron-bert mobilebert squeezebert ernie rembert roformer nezha
data2vec-text xmod luke deberta deberta-v2 electra funnel convbert modernbert
""".split()
)
SEQ2SEQ = frozenset(
    "t5 mt5 umt5 longt5 bart mbart marian pegasus m2m_100 led prophetnet "
    "plbart bigbird_pegasus fsmt nllb-moe switch_transformers encoder-decoder".split()
)
DECODERS = frozenset(
    "gpt2 gpt_neo gpt_neox gptj llama mistral mixtral opt bloom falcon qwen2 "
    "qwen3 gemma gemma2 phi phi3 olmo stablelm codegen ctrl xglm".split()
)

# Tasks an encoder serves with a new head trained on the user's data.
ENCODER_HEAD_TASKS = frozenset(
    {
        "text-classification",
        "token-classification",
        "question-answering",
        "multiple-choice",
        "zero-shot-classification",
        "sentence-similarity",
    }
)
SEQ2SEQ_TASKS = frozenset({"translation", "summarization", "text2text-generation"})
# Pipeline tags that imply the architecture family when config.json says nothing.
ENCODER_TAGS = frozenset(
    {
        "fill-mask",
        "feature-extraction",
        "sentence-similarity",
        "text-classification",
        "token-classification",
        "question-answering",
        "zero-shot-classification",
    }
)


def head_of(architecture: str) -> tuple[str, str] | None:
    """(pipeline tag, Auto class) that an architecture class name implies, or None."""
    for suffix, task, auto in ARCHITECTURE_HEADS:
        if architecture.endswith(suffix):
            return task, auto
    return None


def resolve_task(text: str) -> str:
    """A Hub pipeline tag, or a UsageError listing the close ones."""
    task = text.strip().lower().replace("_", "-").replace(" ", "-")
    if task in PIPELINE_TAGS:
        return task
    close = difflib.get_close_matches(task, PIPELINE_TAGS, n=4, cutoff=0.5)
    close += [t for t in PIPELINE_TAGS if task and task in t and t not in close][:4]
    hint = (
        f"Did you mean: {', '.join(close)}?"
        if close
        else ("Use a Hub pipeline tag such as fill-mask, text-classification or translation.")
    )
    raise UsageError(f"Unknown task {text!r}.", hint)


@dataclass(frozen=True)
class Fit:
    level: str  # "ready": a trained head for the task; "base": a new head is trained; "no"
    how: str  # one line: why, and what loading it for the task gives


TRANSFORMERS_LIBRARIES = frozenset({None, "transformers", "sentence-transformers", "peft"})
Head = tuple[str, str, str]  # (architecture, the pipeline tag it implies, its Auto class)


def heads_of(architectures: list[str]) -> list[Head]:
    """The heads a checkpoint's ``config.json`` architectures name (those that imply one)."""
    return [(a, *h) for a in architectures if (h := head_of(a))]


def not_transformers(library: str | None, architectures: list[str]) -> Fit | None:
    """``no`` for a checkpoint of another library that names no transformers architecture."""
    if library not in TRANSFORMERS_LIBRARIES and not architectures:
        return Fit("no", f"a {library} model, not a transformers checkpoint")
    return None


def fit_for_task(
    task: str,
    pipeline_tag: str | None,
    architectures: list[str],
    model_type: str | None,
    library: str | None = None,
) -> Fit:
    """Whether a checkpoint can serve ``task``, judged from its tags and config."""
    if (refused := not_transformers(library, architectures)) is not None:
        return refused
    heads = heads_of(architectures)
    for arch, head_task, auto in heads:
        if head_task == task:
            return Fit("ready", f"{arch} has a trained {task} head ({auto})")
        if task in SEQ2SEQ_TASKS and head_task == "text2text-generation":
            return Fit("ready", f"{arch} is a trained sequence-to-sequence model ({auto})")
    if pipeline_tag == task:
        return Fit("ready", f"the Hub lists it for {task}")
    family = family_of(model_type, heads, pipeline_tag)
    arch = heads[0][0] if heads else (model_type or "this architecture")
    if family == "encoder":
        if task == "fill-mask":
            if not architectures and model_type in MLM_ENCODERS:
                return Fit(
                    "ready",
                    f"no architectures in config; {model_type} checkpoints are "
                    "pretrained as masked LMs (AutoModelForMaskedLM)",
                )
            return Fit(
                "base",
                f"{arch} is an encoder without its masked-LM head: a new, "
                "untrained head would be added",
            )
        if task == "feature-extraction":
            return Fit("ready", f"{arch} is an encoder: its hidden states are the features")
        if task in ENCODER_HEAD_TASKS:
            return Fit(
                "base",
                f"{arch} is a pretrained encoder: a new {task} head will be trained on your data",
            )
    if family == "seq2seq" and task in SEQ2SEQ_TASKS | {"text-classification"}:
        return Fit(
            "base", f"{arch} is a sequence-to-sequence model: it can be fine-tuned for {task}"
        )
    if family == "decoder" and task in ("text-generation", "text-classification"):
        return Fit("base", f"{arch} is a decoder: it can be fine-tuned for {task}")
    return Fit("no", f"{arch} cannot serve {task}")


def family_of(model_type: str | None, heads: list[Head], pipeline_tag: str | None) -> str | None:
    if model_type in MLM_ENCODERS:
        return "encoder"
    if model_type in SEQ2SEQ:
        return "seq2seq"
    if model_type in DECODERS:
        return "decoder"
    tasks = {task for _, task, _ in heads}
    if tasks & {"fill-mask"} or (not heads and pipeline_tag in ENCODER_TAGS):
        return "encoder"
    if tasks & {"text2text-generation"}:
        return "seq2seq"
    if tasks & {"text-generation"}:
        return "decoder"
    return None
