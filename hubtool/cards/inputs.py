"""What the card stage reads: the user's card settings (the ``card:`` section of hubtool.yaml
and flags, checked) and the run directory's documents."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hubtool.core import rundir
from hubtool.core.configfile import ConfigFile
from hubtool.core.hubclient import valid_repo_id
from hubtool.core.rundir import RunDir
from hubtool.errors import ConfigError, UsageError

USER_FACTS = {
    "intended_uses": "intended uses",
    "out_of_scope": "out-of-scope uses",
    "limitations": "known limitations",
    "authors": "authors",
    "contact": "contact",
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
    show_samples: bool = True  # validation rows in the card, and the widget example from them
    slices: tuple[str, ...] = ()  # columns the results are broken down by (measured in training)

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
    if key == "show_samples":
        if not isinstance(value, bool):
            raise ConfigError(f"Card setting {key!r} must be true or false (got {value!r}).")
        return value
    if key == "slices" and isinstance(value, str):  # a comma-separated list, as finetune's
        value = value.split(",")
    if key in ("authors", "language", "datasets", "tags", "slices"):
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(str(v) for v in items if str(v).strip())
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"Card setting {key!r} must be text.")
    return str(value)


def card_section(config: ConfigFile) -> dict[str, Any]:
    """The ``card:`` section of a hubtool.yaml (``push.repo_id`` counts as the repo id)."""
    section, push = config.section("card"), config.section("push")
    repo = push.get("repo_id") or push.get("repo-id")
    return {"repo_id": repo, **section} if repo else dict(section)


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
    generation_config: dict[str, Any] = field(default_factory=dict)


def read_run(run_dir: Path) -> RunFiles:
    """Every document a card needs; a clear error when the folder is not a finished run."""
    paths = RunDir(run_dir)
    config_file = rundir.model_config_file(paths.model)
    needed = [paths.run_json, paths.metrics, config_file or paths.model / "config.json"]
    absent = [str(p.relative_to(run_dir)) for p in needed if not p.is_file()]
    if absent:
        raise UsageError(
            f"{run_dir} is not a finished hubtool run: {', '.join(absent)} missing.",
            "Give the --output-dir of a completed `hubtool finetune`.",
        )
    try:
        run = rundir.read_json(paths.run_json)
        metrics = rundir.read_json(paths.metrics)
        log_path = paths.train_log
        log = (
            [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
        )
        bias = rundir.read_json(paths.bias) if (paths.bias).exists() else None
        model_config = rundir.read_json(config_file) if config_file else {}
        tok_path = paths.model / "tokenizer_config.json"
        tok = rundir.read_json(tok_path) if tok_path.exists() else {}
        gen_path = paths.model / "generation_config.json"
        generation = rundir.read_json(gen_path) if gen_path.exists() else {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"Cannot read the run in {run_dir}: {exc}") from None
    if run.get("status") != "complete":
        raise UsageError(
            f"The run in {run_dir} is not complete (status: {run.get('status')}).",
            "Finish it with `hubtool finetune --resume` first.",
        )
    return RunFiles(run_dir, run, metrics, log, bias, model_config, tok, generation)
