"""The card stage: a model card written from what a run knows and measured.

``build_context`` gathers everything (run.json, metrics.json, train_log.jsonl, the base model's
card, bias.json, the user's ``card:`` settings) into one documented dictionary
(``templates/README.md``). The front matter is data: ``ModelCardData``/``EvalResult`` dumped by
PyYAML. Jinja renders only the Markdown body, through filters that keep every value inert.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hubtool.cards.base import BaseCard, read_base_card
from hubtool.core import rundir
from hubtool.core.hubclient import valid_repo_id
from hubtool.errors import ConfigError, UsageError

TEMPLATE = "modelcard.md.j2"
TASK_NAMES = {
    "text-classification": "Text Classification",
    "token-classification": "Token Classification",
    "fill-mask": "Masked Language Modeling",
}
KEY_ORDER = (
    "language",
    "license",
    "license_name",
    "license_link",
    "library_name",
    "pipeline_tag",
    "tags",
    "datasets",
    "base_model",
    "base_model_relation",
    "metrics",
    "widget",
    "model-index",
)
USER_FACTS = {
    "intended_uses": "intended uses",
    "out_of_scope": "out-of-scope uses",
    "limitations": "known limitations",
    "authors": "authors",
    "contact": "contact",
}
EXAMPLES = {
    "text-classification": {
        "en": "I really enjoyed this, it was great.",
        "fr": "J'ai vraiment adoré ce film, il était génial.",
    },
    "token-classification": {
        "en": "My name is Sarah and I live in London.",
        "fr": "Je m'appelle Marie et j'habite à Lyon.",
    },
    "fill-mask": {
        "en": "Paris is the {mask} of France.",
        "fr": "Paris est la {mask} de la France.",
    },
}


@dataclass(frozen=True)
class CardSettings:
    """What only the user can say, from the ``card:`` section of hubtool.yaml or flags."""

    repo_id: str | None = None
    intended_uses: str | None = None
    out_of_scope: str | None = None
    limitations: str | None = None
    authors: tuple[str, ...] = ()
    contact: str | None = None
    language: tuple[str, ...] = ()
    license: str | None = None
    datasets: tuple[str, ...] = ()
    base_model: str | None = None
    tags: tuple[str, ...] = ()
    bias_probe: str | None = None

    def missing(self) -> list[str]:
        return [label for key, label in USER_FACTS.items() if not getattr(self, key)]


CARD_KEYS = [f.name for f in fields(CardSettings)]


def card_settings(*layers: dict[str, Any] | None) -> CardSettings:
    """Merge settings layers (later wins; None and empty mean 'not given') and check them."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            key = str(key).replace("-", "_")
            if key not in CARD_KEYS:
                raise ConfigError(
                    f"Unknown card setting {key!r}.", f"Card settings: {', '.join(CARD_KEYS)}."
                )
            if value not in (None, "", [], ()):
                merged[key] = value
    values = {k: _card_value(k, v) for k, v in merged.items()}
    settings = CardSettings(**values)
    if settings.repo_id and not valid_repo_id(settings.repo_id):
        raise ConfigError(
            f"{settings.repo_id!r} is not a Hub repo id.", "Use NAMESPACE/NAME, e.g. alice/model."
        )
    return settings


def check_settings(layers: Sequence[dict[str, Any] | None]) -> CardSettings:
    """Card settings checked as far as they can be before a run exists: names, types, the
    repo id, languages and the bias probe file."""
    from hubtool.core.languages import find_language

    settings = card_settings(*layers)
    unknown = [name for name in settings.language if find_language(name) is None]
    if unknown:
        raise ConfigError(
            f"Unknown language {unknown[0]!r} in the card settings.",
            "Use an ISO 639 code (fr, en, de…) or a language name.",
        )
    if settings.bias_probe and not Path(settings.bias_probe).is_file():
        raise ConfigError(f"card.bias_probe: no such file {settings.bias_probe!r}.")
    return settings


def _card_value(key: str, value: Any) -> Any:
    if key in ("authors", "language", "datasets", "tags"):
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(str(v) for v in items if str(v).strip())
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"Card setting {key!r} must be text.")
    return str(value)


def card_section(path: Path | None) -> dict[str, Any]:
    """The ``card:`` section of a hubtool.yaml (``push.repo_id`` counts as the repo id)."""
    if path is None:
        return {}
    from hubtool.training.config import read_raw_config

    data = read_raw_config(path)
    section = data.get("card") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"The 'card' section of {path} must be a mapping.")
    push = data.get("push") if isinstance(data.get("push"), dict) else {}
    repo = (push or {}).get("repo_id") or (push or {}).get("repo-id")
    return {"repo_id": repo, **section} if repo else dict(section)


# -- context ----------------------------------------------------------------------------------
@dataclass
class RunFiles:
    """The run directory's documents, read once."""

    run_dir: Path
    run: dict[str, Any]
    metrics: dict[str, Any]
    log: list[dict[str, Any]] = field(default_factory=list)
    bias: dict[str, Any] | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    tokenizer_config: dict[str, Any] = field(default_factory=dict)


def read_run(run_dir: Path) -> RunFiles:
    """Every document a card needs; a clear error when the folder is not a finished run."""
    needed = [run_dir / "run.json", run_dir / "metrics.json", run_dir / "model" / "config.json"]
    absent = [str(p.relative_to(run_dir)) for p in needed if not p.is_file()]
    if absent:
        raise UsageError(
            f"{run_dir} is not a finished hubtool run: {', '.join(absent)} missing.",
            "Give the --output-dir of a completed `hubtool finetune`.",
        )
    try:
        run = rundir.read_json(run_dir / "run.json")
        metrics = rundir.read_json(run_dir / "metrics.json")
        log_path = run_dir / "train_log.jsonl"
        log = (
            [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
        )
        bias = rundir.read_json(run_dir / "bias.json") if (run_dir / "bias.json").exists() else None
        model_config = rundir.read_json(run_dir / "model" / "config.json")
        tok_path = run_dir / "model" / "tokenizer_config.json"
        tok = rundir.read_json(tok_path) if tok_path.exists() else {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read the run in {run_dir}: {exc}") from None
    if run.get("status") != "complete":
        raise UsageError(
            f"The run in {run_dir} is not complete (status: {run.get('status')}).",
            "Finish it with `hubtool finetune --resume` first.",
        )
    return RunFiles(run_dir, run, metrics, log, bias, model_config, tok)


def build_context(
    files: RunFiles, settings: CardSettings, base: BaseCard, endpoint: str
) -> dict[str, Any]:
    """Everything a template can use (documented in templates/README.md)."""
    from hubtool.cards import context as cardparts

    run, metrics = files.run, files.metrics
    model = cardparts.model_facts(files, settings, base)
    ctx = {
        "model": model,
        "user": {k: getattr(settings, k) or None for k in USER_FACTS},
        "missing": settings.missing(),
        "data": cardparts.data_facts(run, settings),
        "training": cardparts.training_facts(run, files.log),
        "evaluation": cardparts.evaluation_facts(metrics),
        "bias": files.bias,
        "base_card": asdict(base),
        "endpoint": endpoint.rstrip("/"),
        "versions": run.get("versions", {}),
        "config_yaml": cardparts.config_yaml(run),
    }
    ctx["snippet"] = cardparts.snippet(model)
    ctx["bibtex"] = cardparts.bibtex(model, settings, ctx["endpoint"], run.get("started"))
    ctx["metadata"] = front_matter(ctx, settings, base)
    return ctx


def front_matter(ctx: dict[str, Any], settings: CardSettings, base: BaseCard) -> dict[str, Any]:
    """The card's YAML metadata as a dict, built with ``ModelCardData`` and ``EvalResult``."""
    from huggingface_hub import ModelCardData

    from hubtool.cards import context as cardparts

    model, data = ctx["model"], ctx["data"]
    license_extra: dict[str, Any] = (
        {"license_name": base.license_name, "license_link": base.license_link}
        if model["license"] == "other" and not settings.license
        else {}
    )
    card_data = ModelCardData(
        language=model["languages"] or None,
        license=model["license"],
        **license_extra,
        library_name="transformers",
        pipeline_tag=model["task"],
        tags=["hubtool", *settings.tags],
        datasets=data["hub_ids"] or None,
        base_model=model["base_model"]["id"],
        metrics=[m["name"] for m in ctx["evaluation"]["metrics"]] or None,
        model_name=model["name"],
        eval_results=cardparts.eval_results(model, data, ctx["evaluation"]) or None,
        widget=[{"text": model["example"]}],
    )
    meta = card_data.to_dict()
    if model["base_model"]["id"]:
        meta["base_model_relation"] = "finetune"
    first = [k for k in KEY_ORDER if k in meta]
    return {**{k: meta[k] for k in first}, **{k: v for k, v in meta.items() if k not in first}}


# -- rendering --------------------------------------------------------------------------------
def render(ctx: dict[str, Any], template: Path | None = None) -> str:
    """Front matter (YAML dumped from data) followed by the Jinja-rendered body."""
    import yaml

    from hubtool.cards import context as cardparts

    env = cardparts.environment(template.parent if template else None)
    body = _render_body(env, template, ctx)
    head = yaml.safe_dump(ctx["metadata"], sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{head}---\n\n{body.strip()}\n"


MAX_TEMPLATE_BYTES = 1 << 20


def _render_body(env: Any, template: Path | None, ctx: dict[str, Any]) -> str:
    """The body from the shipped template or the user's; a template that cannot render is
    a ConfigError naming it (and the line), never a traceback."""
    import jinja2
    from jinja2.sandbox import SecurityError

    if template is None:
        return str(env.get_template(TEMPLATE).render(**ctx))
    if not template.is_file():
        raise ConfigError(f"--template {template}: no such file.")
    if template.stat().st_size > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"--template {template} is larger than 1 MiB.")
    try:
        return str(env.get_template(template.name).render(**ctx))
    except SecurityError as exc:
        raise ConfigError(
            f"--template {template} tried something templates may not do: {exc}.",
            "Templates read the documented context (templates/README.md); they run in "
            "Jinja's sandbox.",
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"--template {template}, line {exc.lineno}: {exc.message}.") from None
    except (jinja2.TemplateError, TypeError, ValueError) as exc:
        raise ConfigError(f"--template {template} cannot be rendered: {exc}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--template {template} is not UTF-8 text.") from None


@dataclass
class CardOutcome:
    text: str
    report: Any  # cardcheck.Report
    written: Path | None = None
    notes: list[str] = field(default_factory=list)


SAVED_SETTINGS = "card_settings.json"


def card_stage(
    run_dir: Path,
    layers: Sequence[dict[str, Any] | None],
    endpoint: str,
    template: Path | None = None,
    output: Path | None = None,
    check_only: bool = False,
    strict: bool = False,
) -> CardOutcome:
    """Render, check (locally and with the endpoint's validate-yaml), and write the card only
    when it passes. The settings used are kept in the run for the next render."""
    from hubtool.cards import checks as cardcheck

    saved = run_dir / SAVED_SETTINGS
    previous = rundir.read_json(saved) if saved.is_file() else {}
    settings = card_settings(previous, *layers)
    files = read_run(run_dir)
    base = read_base_card(*_base_ref(files))
    if files.bias is None:
        files.bias = _measure_bias(files, settings, base)
    ctx = build_context(files, settings, base, endpoint)
    text = render(ctx, template)
    report = cardcheck.check_card(text, files.metrics, known_paths(files), ctx["missing"], strict)
    server, note = cardcheck.server_problems(text)
    report.problems += server
    warning = cardcheck.data_license_warning(read_data_license(files.run), ctx["data"]["name"])
    report.warnings += [warning] if warning else []
    outcome = CardOutcome(text, report, notes=[note] if note else [])
    if report.ok and not check_only:
        outcome.written = output or run_dir / "model" / "README.md"
        write_card(text, outcome.written)
        rundir.write_json(saved, {k: v for k, v in asdict(settings).items() if v})
    return outcome


def _base_ref(files: RunFiles) -> tuple[str, str | None]:
    base = files.run.get("base_model", {})
    if base.get("from_scratch"):  # no weights came from it: its card says nothing of this model
        return "", None
    return base.get("id") or "", base.get("revision")


def known_paths(files: RunFiles) -> list[str]:
    """Absolute paths of this machine the run knows: none may reach the card."""
    run = files.run
    values = [
        str(files.run_dir.resolve()),
        run.get("dataset", {}).get("path"),
        run.get("config", {}).get("model"),
        run.get("config", {}).get("dataset"),
        run.get("config", {}).get("output_dir"),
    ]
    return [v for v in values if v and "/" in v and Path(v).is_absolute()]


def read_data_license(run: dict[str, Any]) -> str | None:
    """The training data's license from its Hub card (None when local or unknown)."""
    source = run.get("dataset", {})
    if not source.get("id"):
        return None
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(
            source["id"], "README.md", repo_type="dataset", revision=source.get("revision")
        )
    except Exception:  # no card or not reachable: the license stays unknown
        return None
    from hubtool.cards.base import parse_card

    return parse_card(Path(path).read_text(errors="replace")).license


def _measure_bias(files: RunFiles, settings: CardSettings, base: BaseCard) -> dict[str, Any]:
    from hubtool.cards import bias
    from hubtool.cards import context as cardparts

    found = cardparts.languages(files.run, settings, base)
    language = found[0] if found else None
    probe = Path(settings.bias_probe) if settings.bias_probe else None
    result = bias.measure(files.run_dir, files.run["task"], language, probe)
    rundir.write_json(files.run_dir / "bias.json", result)
    return result


def write_card(text: str, output: Path) -> None:
    """Write atomically: a failure leaves the previous card in place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(text)
    tmp.replace(output)
