"""The card stage: a model card written from what a run knows and measured.

``build_context`` gathers everything (run.json, metrics.json, train_log.jsonl, the base model's
card, bias.json, the user's ``card:`` settings) into one documented dictionary
(``templates/README.md``). The front matter is data: ``ModelCardData``/``EvalResult`` dumped by
PyYAML. Jinja renders only the Markdown body, through filters that keep every value inert.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hubtool import tasks
from hubtool.cards.base import BaseCard, read_base_card
from hubtool.cards.inputs import (  # noqa: F401  (the stage's interface)
    CARD_KEYS,
    USER_FACTS,
    CardSettings,
    RunFiles,
    card_section,
    card_settings,
    check_settings,
    read_run,
)
from hubtool.core import rundir
from hubtool.core.hubclient import HubSettings, make_api
from hubtool.core.rundir import RunDir
from hubtool.errors import ConfigError

TEMPLATE = "modelcard.md.j2"
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


# -- context ----------------------------------------------------------------------------------
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
    ctx["apa"] = cardparts.apa(model, settings, ctx["endpoint"], run.get("started"))
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
        library_name="peft" if _adapter_only(model) else "transformers",
        pipeline_tag=model["task"],
        tags=["hubtool", *(["lora"] if model["adapter"] else []), *settings.tags],
        datasets=data["hub_ids"] or None,
        base_model=model["base_model"]["id"],
        metrics=[m["name"] for m in ctx["evaluation"]["metrics"]] or None,
        model_name=model["name"],
        eval_results=cardparts.eval_results(model, data, ctx["evaluation"]) or None,
        widget=[tasks.get(model["task"]).widget(cardparts.example_input(model))],
        co2_eq_emissions=cardparts.co2_metadata(ctx["training"], model),
    )
    meta = card_data.to_dict()
    if model["base_model"]["id"]:
        meta["base_model_relation"] = _relation(model)
    first = [k for k in KEY_ORDER if k in meta]
    return {**{k: meta[k] for k in first}, **{k: v for k, v in meta.items() if k not in first}}


def _adapter_only(model: dict[str, Any]) -> bool:
    return bool(model["adapter"]) and not model["adapter"].get("merged")


def _relation(model: dict[str, Any]) -> str:
    """adapter (the repo holds a LoRA adapter only), merge (an adapter merged into the
    base's weights) or finetune (every weight trained)."""
    if model["adapter"]:
        return "merge" if model["adapter"].get("merged") else "adapter"
    return "finetune"


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


def card_stage(
    run_dir: Path,
    layers: Sequence[dict[str, Any] | None],
    hub: HubSettings,
    template: Path | None = None,
    output: Path | None = None,
    check_only: bool = False,
    strict: bool = False,
) -> CardOutcome:
    """Render, check (locally and with the endpoint's validate-yaml), and write the card only
    when it passes. The settings used are kept in the run for the next render."""
    from hubtool.cards import checks as cardcheck

    saved = RunDir(run_dir).card_settings
    previous = rundir.read_json(saved) if saved.is_file() else {}
    settings = card_settings(previous, *layers)
    files = read_run(run_dir)
    refuse_unmeasured_slices(settings, files)
    base = read_base_card(*_base_ref(files), hub)
    probe = settings.bias_probe  # a probe given now that did not measure bias.json: measure
    if files.bias is None or (probe and files.bias.get("probe_file") != probe):
        files.bias = _measure_bias(files, settings, base)
    ctx = build_context(files, settings, base, hub.endpoint)
    text = render(ctx, template)
    report = cardcheck.check_card(text, files.metrics, known_paths(files), ctx["missing"], strict)
    server, note = cardcheck.server_problems(text)
    report.problems += server
    warning = cardcheck.data_license_warning(read_data_license(files.run, hub), ctx["data"]["name"])
    report.warnings += [warning] if warning else []
    outcome = CardOutcome(text, report, notes=[note] if note else [])
    if report.ok and not check_only:
        outcome.written = output or RunDir(run_dir).card
        write_card(text, outcome.written)
        rundir.write_json(saved, {k: v for k, v in asdict(settings).items() if v})
    return outcome


def refuse_unmeasured_slices(settings: CardSettings, files: RunFiles) -> None:
    """card.slices names columns the evaluation must have broken the results down by: the
    card cannot measure them itself (it has no predictions)."""
    measured = {f.get("name") for f in (files.metrics.get("by_slice") or {}).get("factors") or []}
    absent = [c.strip() for c in settings.slices if c.strip() not in measured]
    if not absent:
        return
    dataset = files.run.get("dataset") or {}
    where = dataset.get("id") or dataset.get("path")
    split = (dataset.get("validation") or {}).get("split")
    carved = bool((dataset.get("validation") or {}).get("carved_from"))
    config = f" --dataset-config {shlex.quote(dataset['config'])}" if dataset.get("config") else ""
    again = (
        f" or measure them now: hubtool evaluate {shlex.quote(str(files.run_dir))} --dataset "
        f"{shlex.quote(str(where))}{config} --split {shlex.quote(str(split))} --slices "
        f"{shlex.quote(','.join(settings.slices))}"
        if where and split and not carved
        else ""
    )
    raise ConfigError(
        f"card.slices names {', '.join(map(repr, absent))}, which the run's evaluation did "
        "not break its results down by.",
        f"Name the columns in slices when fine-tuning (card.slices in hubtool.yaml does){again}.",
    )


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


def read_data_license(run: dict[str, Any], hub: HubSettings) -> str | None:
    """The training data's license from its Hub card (None when local or unknown)."""
    source = run.get("dataset", {})
    if not source.get("id"):
        return None
    try:
        path = make_api(hub).hf_hub_download(
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
    if probe is not None:
        result["probe_file"] = settings.bias_probe
    rundir.write_json(RunDir(files.run_dir).bias, result)
    return result


def write_card(text: str, output: Path) -> None:
    """Write atomically: a failure leaves the previous card in place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    rundir.write_text(output, text)
