"""Fine-tuning configuration: defaults < config file (YAML or TOML) < command-line flags.

Resolved once into a frozen ``FinetuneConfig``; every value is checked here, so the training
code never meets a nonsensical hyperparameter.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from hubtool import tasks
from hubtool.core.configfile import ConfigFile
from hubtool.errors import ConfigError, UsageError

TASK_CHOICES = ("auto", *tasks.NAMES)
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
)
PRECISIONS = ("auto", "no", "bf16", "fp16")
QUANTIZE = ("none", "4bit", "8bit")


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
    mixed_precision: str = "auto"
    seed: int = 42
    eval_every: str = "epoch"
    save_every: str = "epoch"
    keep_checkpoints: int = 2
    early_stopping: int | None = None
    metric_for_best: str | None = None
    report_to: str | None = "auto"  # auto: tensorboard where installed; tensorboard; none
    output_dir: str | None = None
    group_by_length: bool = True
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    label_all_subwords: bool = False
    from_scratch: bool = False
    compile: str = "auto"
    # question answering
    doc_stride: int | None = None  # None: a quarter of max_length
    max_answer_length: int = 30
    # summarization and translation
    source_column: str | None = None
    target_column: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    source_prefix: str | None = None  # None: the T5 task prefix where the checkpoint needs one
    max_target_length: int = 128
    num_beams: int = 1
    max_new_tokens: int | None = None  # None: max_target_length (text-generation: 48)
    # text generation
    train_on_prompt: bool = False  # learn the prompt's tokens too (chat, prompt-completion)
    packing: bool = False  # several examples per row of max_length, position ids reset
    eval_metrics: str | None = None  # rouge, sacrebleu: score every validation generation
    chat_template: str | None = None  # a Jinja file; None: the checkpoint's, else hubtool's
    # adapters (peft)
    peft: str = "none"  # none | lora
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_target_modules: str = "auto"  # auto, or comma-separated module name suffixes
    merge: bool = False  # model/ holds the merged full weights instead of the adapter
    quantize: str = "none"  # none | 4bit | 8bit: the frozen base loaded by bitsandbytes (QLoRA)
    # energy and CO2-eq of the run, measured by codecarbon (offline)
    emissions: bool = True
    emissions_country: str | None = None  # ISO 3166 alpha-3 (FRA); None: the world average
    emissions_region: str | None = None  # a region codecarbon knows in that country
    # columns of the validation data the card breaks results down by (comma-separated)
    slices: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def changed(self) -> dict[str, Any]:
        """The settings given other values than hubtool's defaults (before any default is
        resolved: max_length None is "128 or the model's limit"), what to run is not one."""
        defaults = FinetuneConfig(model="", dataset="")
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("model", "dataset", "output_dir")
            and getattr(self, f.name) != getattr(defaults, f.name)
        }

    @property
    def slice_columns(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in (self.slices or "").split(",") if c.strip())

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


def finetune_values(config: ConfigFile) -> dict[str, Any]:
    """The finetune settings of a hubtool.yaml (top level, or under ``finetune:``)."""
    section = config.data.get("finetune", config.data)
    if not isinstance(section, dict):
        raise ConfigError(f"The 'finetune' section of {config.path} must be a mapping.")
    known = {k: v for k, v in section.items() if k not in OTHER_SECTIONS}
    return {str(k).replace("-", "_"): v for k, v in known.items()}


OTHER_SECTIONS = ("card", "push", "publish")


def with_card_slices(values: dict[str, Any], config: ConfigFile) -> dict[str, Any]:
    """The finetune values, with ``card.slices`` as the slices when the finetune section
    names none: the card's factors are measured when the model is evaluated."""
    card = config.section("card")
    if values.get("slices") is None and card.get("slices") is not None:
        return {**values, "slices": card["slices"]}
    return values


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


BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
BOOL_WORDS |= {"false": False, "no": False, "off": False, "0": False}


def _coerce(name: str, value: Any) -> Any:
    """The value as the field's type; a value of another type is refused, never guessed
    (``batch_size: true`` is not 1). Numbers may be written as strings ("5e-5": PyYAML reads
    exponents without a dot as text)."""
    kind = str(next(f.type for f in fields(FinetuneConfig) if f.name == name))
    if value is None:
        return None
    if name == "slices" and isinstance(value, (list, tuple)):  # YAML: a list of columns
        if not all(isinstance(v, str) and v.strip() and "," not in v for v in value):
            raise ValueError(f"slices must be column names, not {value!r:.60}")
        return ",".join(v.strip() for v in value)
    if "bool" in kind:
        word = value.strip().lower() if isinstance(value, str) else None
        if isinstance(value, bool) or word in BOOL_WORDS:
            return value if isinstance(value, bool) else BOOL_WORDS[word or ""]
        raise ValueError(f"{name} must be true or false, not {value!r:.40}")
    if "float" in kind or "int" in kind:
        return _number(name, value, whole="int" in kind)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{name} must be text, not {type(value).__name__} {value!r:.40}")


def _number(name: str, value: Any, whole: bool) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{name} must be a number, not {value!r:.40}")
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r:.40}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, not {value!r:.40}")
    if whole:
        if isinstance(number, int):
            return number
        if not float(number).is_integer():
            raise ValueError(f"{name} must be a whole number, not {value!r:.40}")
        return int(number)
    return float(number)


# (field, low, high, what): every number has a range; None means unbounded on that side.
RANGES: list[tuple[str, float | None, float | None, str]] = [
    ("lr", 0, 1, "between 0 and 1 (exclusive)"),
    ("epochs", 0, 100_000, "between 0 (exclusive) and 100,000"),
    ("max_steps", 1, 100_000_000, "between 1 and 100,000,000"),
    ("batch_size", 1, 65_536, "between 1 and 65,536"),
    ("eval_batch_size", 1, 65_536, "between 1 and 65,536"),
    ("grad_accum", 1, 65_536, "between 1 and 65,536"),
    ("weight_decay", 0, 10, "between 0 and 10"),
    ("warmup_ratio", 0, 1, "in [0, 1)"),
    ("max_grad_norm", 0, 1e6, "between 0 (exclusive) and 1,000,000"),
    ("max_length", 8, 65_536, "between 8 and 65536"),
    ("seed", 0, 2**32 - 1, "between 0 and 4,294,967,295"),
    ("validation_share", 0, 1, "in (0, 1)"),
    ("keep_checkpoints", 1, 10_000, "between 1 and 10,000"),
    ("early_stopping", 1, 1_000_000, "≥ 1"),
    ("mlm_probability", 0, 1, "in (0, 1)"),
    ("doc_stride", 0, 16_384, "between 0 and 16,384"),
    ("max_answer_length", 1, 4_096, "between 1 and 4,096"),
    ("max_target_length", 1, 65_536, "between 1 and 65,536"),
    ("num_beams", 1, 64, "between 1 and 64"),
    ("max_new_tokens", 1, 65_536, "between 1 and 65,536"),
    ("lora_r", 1, 4_096, "between 1 and 4,096"),
    ("lora_alpha", 0, 100_000, "between 0 (exclusive) and 100,000"),
    ("lora_dropout", 0, 1, "in [0, 1)"),
]
OPEN_LOW = {"lr", "epochs", "max_grad_norm", "validation_share", "mlm_probability", "lora_alpha"}
OPEN_HIGH = {"lr", "warmup_ratio", "validation_share", "mlm_probability", "lora_dropout"}


def _in_range(cfg: FinetuneConfig, name: str, low: float | None, high: float | None) -> bool:
    value = getattr(cfg, name)
    if value is None:
        return True
    above = low is None or (value > low if name in OPEN_LOW else value >= low)
    below = high is None or (value < high if name in OPEN_HIGH else value <= high)
    return above and below


def check(cfg: FinetuneConfig) -> None:
    """Refuse nonsensical values with one clear message each."""
    for name, low, high, what in RANGES:
        if not _in_range(cfg, name, low, high):
            raise ConfigError(f"Invalid setting: {name} must be {what} (got {getattr(cfg, name)}).")
    rules: list[tuple[bool, str]] = [
        (cfg.task in TASK_CHOICES, f"task must be one of {', '.join(TASK_CHOICES)}"),
        (cfg.scheduler in SCHEDULERS, f"scheduler must be one of {', '.join(SCHEDULERS)}"),
        (cfg.mixed_precision in PRECISIONS, f"mixed_precision must be one of {PRECISIONS}"),
        (_every_ok(cfg.eval_every), "eval_every must be 'epoch' or a positive number of steps"),
        (_every_ok(cfg.save_every), "save_every must be 'epoch' or a positive number of steps"),
        (
            cfg.report_to in (None, "auto", "none", "tensorboard"),
            "report_to must be auto, tensorboard or none",
        ),
        (cfg.compile in ("auto", "yes", "no"), "compile must be auto, yes or no"),
        (cfg.peft in ("none", "lora"), "peft must be none or lora"),
        (not cfg.merge or cfg.peft != "none", "merge needs an adapter (peft: lora)"),
        (bool(cfg.lora_target_modules.strip()), "lora_target_modules must be auto or names"),
        (cfg.quantize in QUANTIZE, f"quantize must be one of {', '.join(QUANTIZE)}"),
        (
            cfg.emissions_country is None
            or (len(cfg.emissions_country) == 3 and cfg.emissions_country.isalpha()),
            "emissions_country must be an ISO 3166 alpha-3 code such as FRA or USA",
        ),
        (
            cfg.emissions_region is None or cfg.emissions_country is not None,
            "emissions_region needs emissions_country",
        ),
        (
            cfg.quantize == "none" or cfg.peft != "none",
            "quantize needs an adapter (peft: lora): quantized weights cannot be trained "
            "themselves, only a LoRA adapter on top of them",
        ),
        (
            cfg.quantize == "none" or not cfg.from_scratch,
            "quantize loads trained weights; it cannot be combined with from_scratch",
        ),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(f"Invalid setting: {message}.")


def _every_ok(value: str) -> bool:
    digits = value.isascii() and value.isdigit() and len(value) < 10
    return value == "epoch" or (digits and int(value) > 0)


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
