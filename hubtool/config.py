"""Fine-tuning configuration: defaults < config file (YAML or TOML) < command-line flags.

Resolved once into a frozen ``FinetuneConfig``; every value is checked here, so the training
code never meets a nonsensical hyperparameter.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from hubtool.errors import ConfigError, UsageError

TASKS = ("auto", "text-classification", "fill-mask", "token-classification")
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
PRECISIONS = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class FinetuneConfig:
    model: str
    dataset: str
    dataset_config: str | None = None
    dataset_revision: str | None = None
    task: str = "auto"
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    train_split: str = "train"
    validation_split: str = "auto"
    validation_share: float = 0.1
    epochs: float = 3.0
    max_steps: int | None = None
    batch_size: int = 16
    eval_batch_size: int | None = None
    grad_accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.0
    scheduler: str = "linear"
    max_grad_norm: float = 1.0
    max_length: int | None = None  # None: 128, or the model's limit when lower
    mixed_precision: str = "no"
    seed: int = 42
    eval_every: str = "epoch"
    save_every: str = "epoch"
    keep_checkpoints: int = 2
    early_stopping: int | None = None
    metric_for_best: str | None = None
    report_to: str | None = None
    output_dir: str | None = None
    group_by_length: bool = True
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    label_all_subwords: bool = False
    from_scratch: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def run_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        name = f"{Path(self.model).name}-{Path(self.dataset).name}".replace("/", "-")
        return Path("runs") / name

    def every(self, which: str) -> int | None:
        """Steps between evaluations/saves; None means at each epoch's end."""
        value = self.eval_every if which == "eval" else self.save_every
        return None if value == "epoch" else int(value)


FIELD_NAMES = [f.name for f in fields(FinetuneConfig)]


def read_config_file(path: Path) -> dict[str, Any]:
    """The finetune settings in a YAML or TOML file (top level, or under ``finetune:``)."""
    data = read_raw_config(path)
    section = data.get("finetune", data)
    if not isinstance(section, dict):
        raise ConfigError(f"The 'finetune' section of {path} must be a mapping.")
    known = {k: v for k, v in section.items() if k not in OTHER_SECTIONS}
    return {str(k).replace("-", "_"): v for k, v in known.items()}


OTHER_SECTIONS = ("card", "push", "publish")


def read_raw_config(path: Path) -> dict[str, Any]:
    """The whole config file as a mapping (YAML, or TOML by its suffix)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}.") from None
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise ConfigError(
                    "TOML config files need Python 3.11 or later.",
                    "Use a YAML file (hubtool.yaml) instead.",
                ) from None
            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except ConfigError:
        raise
    except Exception as exc:  # yaml and toml raise their own error types
        raise ConfigError(
            f"Config file {path} is not valid {path.suffix[1:].upper() or 'YAML'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of settings.")
    return data


def resolve_config(file_values: dict[str, Any], flags: dict[str, Any]) -> FinetuneConfig:
    """Merge file values and flags (flags win; None means 'not given'), then validate."""
    merged = {**file_values, **{k: v for k, v in flags.items() if v is not None}}
    unknown = [k for k in merged if k not in FIELD_NAMES]
    if unknown:
        close = difflib.get_close_matches(unknown[0], FIELD_NAMES, n=1)
        raise ConfigError(
            f"Unknown setting {unknown[0]!r}.",
            f"Did you mean {close[0]!r}?"
            if close
            else f"Valid settings: {', '.join(FIELD_NAMES)}.",
        )
    for key in ("model", "dataset"):
        if not merged.get(key):
            raise UsageError(f"No {key} given.", f"Pass --{key} or set '{key}' in the config file.")
    try:
        cfg = FinetuneConfig(**{k: _coerce(k, v) for k, v in merged.items()})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Invalid setting: {exc}.") from None
    check(cfg)
    return cfg


def _coerce(name: str, value: Any) -> Any:
    kind = next(f.type for f in fields(FinetuneConfig) if f.name == name)
    if value is None:
        return None
    if "float" in str(kind):
        return float(value)
    if "int" in str(kind):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{name} must be a whole number, not {value}")
        return int(value)
    if "bool" in str(kind):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    return str(value)


def check(cfg: FinetuneConfig) -> None:
    """Refuse nonsensical values with one clear message each."""
    rules: list[tuple[bool, str]] = [
        (cfg.task in TASKS, f"task must be one of {', '.join(TASKS)}"),
        (0 < cfg.lr < 1, f"lr must be between 0 and 1 (got {cfg.lr})"),
        (cfg.epochs > 0, f"epochs must be positive (got {cfg.epochs})"),
        (cfg.max_steps is None or cfg.max_steps > 0, "max_steps must be positive"),
        (cfg.batch_size >= 1, "batch_size must be at least 1"),
        (
            cfg.eval_batch_size is None or cfg.eval_batch_size >= 1,
            "eval_batch_size must be at least 1",
        ),
        (cfg.grad_accum >= 1, "grad_accum must be at least 1"),
        (cfg.weight_decay >= 0, "weight_decay must not be negative"),
        (0 <= cfg.warmup_ratio < 1, "warmup_ratio must be in [0, 1)"),
        (cfg.scheduler in SCHEDULERS, f"scheduler must be one of {', '.join(SCHEDULERS)}"),
        (cfg.max_grad_norm > 0, "max_grad_norm must be positive"),
        (
            cfg.max_length is None or 8 <= cfg.max_length <= 65536,
            "max_length must be between 8 and 65536",
        ),
        (cfg.mixed_precision in PRECISIONS, f"mixed_precision must be one of {PRECISIONS}"),
        (0 < cfg.validation_share < 1, "validation_share must be in (0, 1)"),
        (cfg.keep_checkpoints >= 1, "keep_checkpoints must be at least 1"),
        (cfg.early_stopping is None or cfg.early_stopping >= 1, "early_stopping must be ≥ 1"),
        (0 < cfg.mlm_probability < 1, "mlm_probability must be in (0, 1)"),
        (_every_ok(cfg.eval_every), "eval_every must be 'epoch' or a positive number of steps"),
        (_every_ok(cfg.save_every), "save_every must be 'epoch' or a positive number of steps"),
        (cfg.report_to in (None, "tensorboard"), "report_to must be 'tensorboard'"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(f"Invalid setting: {message}.")


def _every_ok(value: str) -> bool:
    return value == "epoch" or (value.isdigit() and int(value) > 0)


DEFAULT_MAX_LENGTH = 128


def with_max_length(cfg: FinetuneConfig, model_limit: int | None) -> FinetuneConfig:
    """Fill in max_length (128, or the model's limit when lower); refuse one beyond it."""
    if cfg.max_length is None:
        return replace(cfg, max_length=min(DEFAULT_MAX_LENGTH, model_limit or DEFAULT_MAX_LENGTH))
    if model_limit and cfg.max_length > model_limit:
        raise UsageError(
            f"max_length {cfg.max_length} is beyond the model's limit of {model_limit} tokens.",
            f"Use --max-length {model_limit} or less.",
        )
    return cfg
