"""The pieces of a card's context, one function per section, and the Jinja environment whose
filters keep every value inert in Markdown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubtool import tasks
from hubtool.core.rundir import RunDir
from hubtool.errors import ConfigError
from hubtool.tasks.base import literal

if TYPE_CHECKING:
    from hubtool.cards.base import BaseCard
    from hubtool.cards.inputs import CardSettings, RunFiles

HYPERPARAMETERS = (
    "lr",
    "batch_size",
    "grad_accum",
    "epochs",
    "max_steps",
    "scheduler",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "max_length",
    "mixed_precision",
    "group_by_length",
    "seed",
)
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "precision_macro": "Precision (macro)",
    "recall_macro": "Recall (macro)",
    "f1_macro": "F1 (macro)",
    "matthews_correlation": "Matthews correlation",
    "precision": "Precision (entity)",
    "recall": "Recall (entity)",
    "f1": "F1 (entity)",
    "perplexity": "Perplexity",
    "loss": "Loss",
    "f1_micro": "F1 (micro)",
    "precision_micro": "Precision (micro)",
    "recall_micro": "Recall (micro)",
    "subset_accuracy": "Subset accuracy (every label right)",
    "exact_match": "Exact match",
    "has_answer_exact_match": "Exact match (answerable)",
    "has_answer_f1": "F1 (answerable)",
    "no_answer_exact_match": "Accuracy on unanswerable questions",
    "brevity_penalty": "BLEU brevity penalty",
    "length_ratio": "Output/reference length",
}


# -- Markdown safety ----------------------------------------------------------------------------
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#!|~&$])")
_LINE_START = re.compile(r"^(\s*)([-=>]|\d+[.)])", re.M)


def md(value: Any, width: int = 300) -> str:
    """Inline text: one line, Markdown and HTML specials escaped, clipped to ``width``."""
    text = " ".join(str(value if value is not None else "").split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return _SPECIAL.sub(r"\\\1", text)


def prose(value: Any) -> str:
    """User paragraphs: line breaks kept, everything that could become markup escaped."""
    paragraphs = re.split(r"\n\s*\n", str(value or "").strip())
    escaped = [_SPECIAL.sub(r"\\\1", " ".join(p.split())) for p in paragraphs if p.strip()]
    return "\n\n".join(_LINE_START.sub(r"\1\\\2", p) for p in escaped)


def quote(value: Any) -> str:
    """Text carried from another card, as a block quote with HTML neutralised."""
    text = str(value or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "\n".join("> " + line if line.strip() else ">" for line in text.splitlines())


def num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def url_path(value: Any) -> str:
    """A repo id inside a link target: percent-encoded, so it cannot end the link."""
    from urllib.parse import quote

    return quote(str(value or ""), safe="/-._~")


def value(v: Any) -> str:
    """A setting's value as a reader expects it: 5e-05, 0.01, yes."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    return md(v)


def environment(user_dir: Path | None) -> Any:
    """Jinja's immutable sandbox for every template, the shipped ones and the user's: a
    template reads the context; it cannot reach Python internals, run code or change data."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    loaders: list[Any] = [jinja2.PackageLoader("hubtool.templates", ".")]
    if user_dir is not None:
        loaders.insert(0, jinja2.FileSystemLoader(str(user_dir)))
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=md, prose=prose, quote=quote, num=num, value=value, url=url_path)
    return env


# -- sections -----------------------------------------------------------------------------------
def languages(run: dict[str, Any], settings: CardSettings, base: BaseCard) -> list[str]:
    """ISO codes: the user's, else the data's (guessed from the text), else the base card's."""
    from hubtool.core.languages import find_language

    if settings.language:
        codes = []
        for name in settings.language:
            lang = find_language(name)
            if lang is None:
                raise ConfigError(f"Unknown language {name!r} in the card settings.")
            codes.append(lang.code)
        return codes
    pair = [(run.get("config") or {}).get(k) for k in ("source_lang", "target_lang")]
    if run.get("task") == "translation" and all(pair):  # both sides of the pair, as the Hub
        found = [find_language(str(c)) for c in pair]
        return [f.code if f else str(c) for f, c in zip(found, pair, strict=True)]
    guess = run.get("data", {}).get("language_guess")
    if guess:
        return [guess]
    return [c for c in base.languages if find_language(c) is not None or c == "multilingual"]


def _local_path(value: str | None) -> bool:
    return bool(value) and (str(value).startswith(("/", ".", "~")) or Path(str(value)).exists())


def model_facts(files: RunFiles, settings: CardSettings, base: BaseCard) -> dict[str, Any]:

    run = files.run
    task = run["task"]
    base_id = run.get("base_model", {}).get("id")
    scratch = bool(run.get("base_model", {}).get("from_scratch"))
    hub_base = (
        None if scratch else settings.base_model or (None if _local_path(base_id) else base_id)
    )
    langs = languages(run, settings, base)
    mask = _mask_token(files.tokenizer_config)
    spec = tasks.get(task)
    examples = spec.examples
    example = examples.get(langs[0] if langs else "en", examples["en"])
    from_data = (run.get("data") or {}).get("example")
    if from_data and settings.show_samples:  # a validation row, in the data's language
        example = from_data
    name = (settings.repo_id or "").split("/")[-1] or files.run_dir.resolve().name
    return {
        "name": re.sub(r"[^\w.-]+", "-", name).strip("-") or "model",
        "repo_id": settings.repo_id,
        "task": task,
        "task_name": spec.title,
        "languages": langs,
        "license": settings.license or base.license,
        "license_source": "user" if settings.license else ("base model" if base.license else None),
        "parameters": _parameters(RunDir(files.run_dir).model),
        "architecture": (files.model_config.get("architectures") or [None])[0]
        or (run.get("adapter") or {}).get("architecture"),
        "adapter": run.get("adapter"),
        "base_model": {
            "id": hub_base,
            "revision": run.get("base_model", {}).get("revision") if hub_base == base_id else None,
            "local": hub_base is None and not scratch,
            "from_scratch": scratch,
        },
        "labels": run.get("labels") or [],
        "multi_label": bool(run.get("multi_label")),
        "mask_token": mask,
        "example": spec.card_example(
            example.format(mask=mask or "[MASK]") if isinstance(example, str) else example,
            run.get("data", {}).get("preparation") or {},
        ),
        "source_prefix": (run.get("data", {}).get("preparation") or {}).get("source_prefix"),
        "generation_config": {
            k: v
            for k, v in files.generation_config.items()
            if not k.startswith("_") and k not in GENERATION_NOISE and v is not None
        },
    }


# generation_config.json keys that say nothing about how the model generates
GENERATION_NOISE = frozenset(
    {"transformers_version", "output_attentions", "output_hidden_states", "use_cache"}
)


def _mask_token(tokenizer_config: dict[str, Any]) -> str | None:
    token = tokenizer_config.get("mask_token")
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) else None


def _parameters(model_dir: Path) -> int | None:
    from hubtool.core.cardmeta import safetensors_parameters

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with open(path, "rb") as fh:
            prefix = fh.read(8)
            length = int.from_bytes(prefix, "little")
            if len(prefix) < 8 or length > min(path.stat().st_size, 100 << 20):
                return None  # not a safetensors file: the count is unknown, not wrong
            total += sum(safetensors_parameters(prefix + fh.read(length)).values())
    return total or None


def data_facts(run: dict[str, Any], settings: CardSettings) -> dict[str, Any]:
    source, stats, cfg = run.get("dataset", {}), run.get("data", {}), run.get("config", {})
    hub_id = source.get("id")
    hub_ids = list(settings.datasets) or ([hub_id] if hub_id else [])
    local_name = Path(source.get("path") or "data").name
    validation = source.get("validation") or {}
    truncated = stats.get("truncated", {})
    return {
        "id": hub_id,
        "hub_ids": hub_ids,
        "name": hub_id or (hub_ids[0] if hub_ids else local_name),
        "local": hub_id is None,
        "config": source.get("config"),
        "revision": source.get("revision"),
        "splits": [
            {
                "name": cfg.get("train_split", "train"),
                "rows": stats.get("train_rows"),
                "truncated": truncated.get("train"),
                "held_out_share": None,
            },
            {
                "name": source.get("split"),
                "rows": stats.get("validation_rows"),
                "truncated": truncated.get("validation"),
                "held_out_share": validation.get("share"),
            },
        ],
        "label_distribution": _distribution(stats.get("label_distribution") or {}),
        "multi_label": bool(run.get("multi_label")),
        "co_occurrence": stats.get("label_co_occurrence") or [],
        "label_columns": stats.get("label_columns") or [],
        "columns": run.get("columns", {}),
        "max_length": cfg.get("max_length"),
        "language_guess": stats.get("language_guess"),
        "settings": {
            **((tasks.get(run["task"]).data_settings(cfg) or {}) if run.get("task") else {}),
            **(stats.get("preparation") or {}),
        },
        "label_all_subwords": cfg.get("label_all_subwords"),
        "token_lengths": [
            {"split": split["name"], **lengths}
            for split, lengths in zip(
                ({"name": cfg.get("train_split", "train")}, {"name": source.get("split")}),
                ((stats.get("token_lengths") or {}).get(k) for k in ("train", "validation")),
                strict=True,
            )
            if lengths
        ],
        "samples": (stats.get("samples") or []) if settings.show_samples else [],
    }


def _distribution(dist: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    train, val = dist.get("train", {}), dist.get("validation", {})
    return [{"label": k, "train": train.get(k, 0), "validation": val.get(k, 0)} for k in train]


def training_facts(run: dict[str, Any], log: list[dict[str, Any]]) -> dict[str, Any]:
    cfg, steps = run.get("config", {}), run.get("steps", {})
    hw, speed = run.get("hardware", {}), run.get("throughput", {})
    processes = hw.get("processes", 1)
    chosen = run.get("precision") or {}
    shown = {**cfg, "mixed_precision": _precision_label(chosen) or cfg.get("mixed_precision")}
    given = run.get("changed_settings")  # None: a run from before hubtool recorded it
    changed = [
        {"name": k, "value": v, "default": _default_of(k)}
        for k, v in (given or {}).items()
        if v is not None and not isinstance(v, (dict, list))
    ]
    params = [
        (k, shown.get(k))
        for k in HYPERPARAMETERS
        if shown.get(k) is not None and k not in (given or {})
    ]
    params += [
        ("effective_batch_size", cfg.get("batch_size", 0) * cfg.get("grad_accum", 1) * processes),
        ("optimizer", "AdamW (torch)"),
        ("steps", steps.get("done")),
    ]
    return {
        "changed": changed if given is not None else None,
        "hyperparameters": params,
        "hardware": hw,
        "processes": processes,
        "duration_s": run.get("duration_s"),
        "train_seconds": speed.get("train_seconds"),
        "samples_per_second": speed.get("samples_per_second"),
        "padding_ratio": speed.get("padding_ratio"),
        "precision_text": _precision_text(chosen.get("used")),
        "precision_auto": chosen.get("requested") == "auto",
        "precision_reason": chosen.get("reason"),
        "started": run.get("started"),
        "seed": run.get("seed", cfg.get("seed")),
        "resumes": run.get("resumes") or [],
        "emissions": run.get("emissions"),
        "evaluations": _evaluations(log, steps.get("per_epoch") or 0),
    }


def co2_metadata(training: dict[str, Any], model: dict[str, Any]) -> dict[str, Any] | None:
    """The Hub's ``co2_eq_emissions`` entry (grams) from a measured run, else None."""
    e = training.get("emissions") or {}
    if not e.get("measured"):
        return None
    where = ", ".join(p for p in (e.get("region"), e.get("country")) if p) or "world average"
    hw = training.get("hardware") or {}
    used = e.get("gpu") or e.get("cpu") or hw.get("cpu") or "CPU"
    processes = training.get("processes") or 1
    return {
        "emissions": float(f"{float(e['emissions_kg']) * 1000:.6g}"),  # grams
        "source": f"codecarbon {e.get('codecarbon') or ''}".strip(),
        "training_type": "pre-training" if model["base_model"]["from_scratch"] else "fine-tuning",
        "geographical_location": where,
        "hardware_used": f"{processes} x {used}" if processes > 1 else str(used),
    }


def _default_of(name: str) -> Any:
    """hubtool's default for a finetune setting (None where it has none)."""
    from hubtool.training.config import FinetuneConfig

    return getattr(FinetuneConfig(model="", dataset=""), name, None)


PRECISION_NAMES = {"no": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}


def _precision_label(chosen: dict[str, Any]) -> str | None:
    """'bf16 autocast (auto)' for run.json's precision decision; None for older runs."""
    used = chosen.get("used")
    if used is None:
        return None
    how = " (auto)" if chosen.get("requested") == "auto" else ""
    return f"{PRECISION_NAMES.get(used, used)}{how}"


def _precision_text(used: str | None) -> str | None:
    if used in (None, "no"):
        return "fp32" if used else None
    return f"{used} autocast (weights and optimizer state in fp32)"


def _evaluations(log: list[dict[str, Any]], per_epoch: int) -> dict[str, Any]:
    rows, last_loss = [], None
    for entry in log:
        if "eval" not in entry:
            last_loss = entry.get("loss", last_loss)
            continue
        epoch = round(entry["step"] / per_epoch, 2) if per_epoch else entry.get("epoch")
        rows.append(
            {
                "step": entry["step"],
                "epoch": epoch,
                "train_loss": last_loss,
                "metrics": entry["eval"],
            }
        )
    names = list(rows[-1]["metrics"]) if rows else []
    return {"names": names, "rows": rows}


def evaluation_facts(metrics: dict[str, Any]) -> dict[str, Any]:
    intervals = metrics.get("confidence_intervals") or {}
    details = metrics.get("details", {})
    task = metrics.get("task")
    names = {**METRIC_NAMES, **(tasks.get(task).metric_names if task in tasks.BY_NAME else {})}
    return {
        "split": metrics.get("dataset", {}).get("split"),
        "examples": metrics.get("examples"),
        "metrics": [
            {"name": k, "label": names.get(k, k), "value": v, "interval": intervals.get(k)}
            for k, v in metrics.get("metrics", {}).items()
        ],
        "interval_level": intervals.get("level"),
        "resamples": intervals.get("resamples"),
        "per_class": details.get("per_class"),
        "confusion_matrix": details.get("confusion_matrix"),
        "threshold": (details.get("decision") or {}).get("threshold"),
        "by_length": metrics.get("by_length") or [],
        "length_columns": [
            {"key": k, "label": names.get(k, k)}
            for k in (metrics.get("by_length") or [{}])[0]
            if k not in ("part", "tokens", "words", "examples")
        ],
        "generation": details.get("generation"),
        "slices": slice_facts(metrics.get("by_slice") or {}, names),
        "samples": details.get("samples") or [],
        "baselines": [
            {
                "label": b.get("label") or b.get("name"),
                "about": b.get("about"),
                "metrics": b.get("metrics") or {},
            }
            for b in metrics.get("baselines") or []
            if isinstance(b, dict)
        ],
        "one_class": details.get("one_class"),
        "metric_for_best": metrics.get("metric_for_best"),
        "step": metrics.get("step"),
    }


def slice_facts(by_slice: dict[str, Any], names: dict[str, str]) -> dict[str, Any] | None:
    """The results by slice as the card's table reads them, and the slices whose interval
    lies wholly on the worse side of the whole split's value (measurably weaker)."""
    from hubtool.training.evaluation import HIGHER_IS_BETTER

    factors, whole = by_slice.get("factors") or [], by_slice.get("all") or {}
    if not factors or not whole:
        return None
    keys = [k for k in by_slice.get("metrics") or [] if k in whole.get("metrics", {})]
    weaker = []
    for factor in factors:
        for piece in factor.get("slices") or []:
            for key in keys:
                low, high = (piece.get("intervals") or {}).get(key) or (None, None)
                overall = whole["metrics"][key]
                higher = HIGHER_IS_BETTER.get(key, True)
                if low is not None and (high < overall if higher else low > overall):
                    weaker.append(
                        {"factor": factor["name"], "slice": piece, "key": key, "overall": overall}
                    )
    return {
        "metrics": [{"key": k, "label": names.get(k, k)} for k in keys],
        "resamples": by_slice.get("resamples"),
        "level": by_slice.get("level"),
        "all": whole,
        "factors": factors,
        "guessed": any(f.get("guessed") for f in factors),
        "weaker": weaker,
    }


def eval_results(
    model: dict[str, Any], data: dict[str, Any], evaluation: dict[str, Any]
) -> list[Any]:
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type=model["task"],
            task_name=model["task_name"],
            dataset_type=data["name"],
            dataset_name=data["name"],
            dataset_config=data["config"],
            dataset_split=evaluation["split"],
            dataset_revision=data["revision"],
            metric_type=m["name"],
            metric_value=round(float(m["value"]), 6),
            metric_name=f"Validation {m['label'].lower()}",
        )
        for m in evaluation["metrics"]
    ]


def config_yaml(run: dict[str, Any]) -> str:
    """The run's exact finetune settings as a hubtool.yaml (local paths kept: it reproduces
    this machine's run; the card shows it only with paths reduced to their names)."""
    import yaml

    cfg = {k: v for k, v in run.get("config", {}).items() if v is not None}
    for key in ("model", "dataset", "output_dir"):
        if _local_path(cfg.get(key)):
            cfg[key] = Path(str(cfg[key])).name
    return yaml.safe_dump({"finetune": cfg}, sort_keys=False, allow_unicode=True)


def snippet(model: dict[str, Any]) -> str:
    """Python that loads this exact repo for its task and runs the card's example."""
    repo = model["repo_id"] or model["name"]
    spec = tasks.get(model["task"])
    extra = spec.pipeline_options
    if model.get("multi_label"):  # every label's score, not only the top one
        extra += ", top_k=None"
    adapter = model.get("adapter") or {}
    if not adapter or adapter.get("merged"):
        return spec.usage(repo, example_input(model), extra)
    if model["labels"] and spec.labelled:  # the base model's config does not know them
        extra += f", model_kwargs={_label_kwargs(model)}"
    return (
        "# The repository holds a LoRA adapter: pip install peft. transformers loads the base\n"
        "# model it names and applies the adapter (and its trained head) on top.\n"
        + spec.usage(repo, example_input(model), extra)
    )


def _label_kwargs(model: dict[str, Any]) -> str:
    """The labels as Python literals for from_pretrained (an adapter's head has them, the
    base model's config does not)."""
    labels = model["labels"]
    id2label = ", ".join(f"{i}: {literal(name)}" for i, name in enumerate(labels))
    label2id = ", ".join(f"{literal(name)}: {i}" for i, name in enumerate(labels))
    parts = [f'"id2label": {{{id2label}}}', f'"label2id": {{{label2id}}}']
    if model.get("multi_label"):
        parts.append('"problem_type": "multi_label_classification"')
    return "{" + ", ".join(parts) + "}"


def example_input(model: dict[str, Any]) -> Any:
    """The card's example as the model takes it (with the source prefix it was trained on)."""
    example = model["example"]
    prefix = model.get("source_prefix")
    return prefix + example if prefix and isinstance(example, str) else example


def citation_url(endpoint: str, repo_id: str | None) -> str | None:
    """Where a citation points: the repo on the Hub that serves the card; none on a
    loopback Hub (a demo's port dies with it; the repo id is named instead)."""
    from urllib.parse import urlsplit

    host = urlsplit(endpoint).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        return None
    return f"{endpoint}/{repo_id}" if repo_id else endpoint


def _where(model: dict[str, Any], endpoint: str) -> tuple[str | None, str]:
    """(the citation's URL or None, how the citation says where the model is)."""
    url = citation_url(endpoint, model["repo_id"])
    return url, url or f"Hugging Face Hub repository {model['repo_id'] or model['name']}"


def _authors(settings: CardSettings) -> list[str]:
    names = [" ".join(re.sub(r"[^\w .,'-]", " ", a).split()) for a in settings.authors]
    return [n for n in names if n]


def bibtex(model: dict[str, Any], settings: CardSettings, endpoint: str, started: Any) -> str:
    key = re.sub(r"\W+", "_", model["name"]).strip("_").lower() or "model"
    year = str(started or "")[:4] or "2026"
    authors = " and ".join(_authors(settings)) or "unknown"
    url, where = _where(model, endpoint)
    where = f"\\url{{{url}}}" if url else where
    return (
        f"@misc{{{key}_{year},\n"
        f"  title = {{{model['name']}: a fine-tuned {model['task_name'].lower()} model}},\n"
        f"  author = {{{authors}}},\n"
        f"  year = {{{year}}},\n"
        f"  howpublished = {{{where}}},\n"
        f"  note = {{Fine-tuned with hubtool}}\n"
        "}"
    )


def apa(model: dict[str, Any], settings: CardSettings, endpoint: str, started: Any) -> str:
    """The same citation in APA style: Authors. (Year). *Title* [Model]. Where."""
    year = str(started or "")[:4] or "n.d."
    names = _authors(settings)
    authors = (", ".join(names[:-1]) + ", & " + names[-1]) if len(names) > 1 else "".join(names)
    _, where = _where(model, endpoint)
    title = f"{model['name']}: A fine-tuned {model['task_name'].lower()} model"
    lead = f"{authors}. ({year})." if authors else f"{title}. ({year})."
    body = f" {title} [Machine learning model]." if authors else " [Machine learning model]."
    return f"{lead}{body} {where}"
