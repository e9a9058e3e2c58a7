"""LoRA adapters through ``peft``: the base model frozen, low-rank updates trained in the
layers ``--lora-target-modules`` names (``auto``: peft's choice for the architecture, else
every linear layer), and every module the checkpoint did not have (a new ``classifier``,
``score`` or ``qa_outputs`` head) trained whole and saved with the adapter
(``modules_to_save``), so the published adapter reloads with its head.

The run's ``model/`` then holds ``adapter_config.json`` + ``adapter_model.safetensors`` and
the tokenizer; ``--merge`` writes the merged full weights there instead."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hubtool.errors import ConfigError, UsageError

# hubtool task -> peft task type (what PeftModel subclass wraps the model)
TASK_TYPES = {
    "text-classification": "SEQ_CLS",
    "token-classification": "TOKEN_CLS",
    "question-answering": "QUESTION_ANS",
    "text-generation": "CAUSAL_LM",
    "summarization": "SEQ_2_SEQ_LM",
    "translation": "SEQ_2_SEQ_LM",
    "fill-mask": None,  # no peft task type: a plain PeftModel
}
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def new_modules(missing_keys: list[str], model: Any) -> list[str]:
    """The modules whose weights the checkpoint did not have (freshly initialised heads):
    the shortest module paths covering every missing key."""
    names = {k.rsplit(".", 1)[0] for k in missing_keys if "." in k}
    modules = dict(model.named_modules())
    kept = sorted(n for n in names if n in modules)
    return [n for n in kept if not any(n.startswith(o + ".") for o in kept if o != n)]


def wrap(model: Any, cfg: Any, task: str, heads: list[str]) -> tuple[Any, dict[str, Any]]:
    """The model with a LoRA adapter (base frozen); what run.json records of it."""
    from peft import LoraConfig, get_peft_model

    if cfg.from_scratch:
        raise UsageError(
            "--peft lora cannot train from scratch: an adapter only adjusts trained weights.",
            "Drop --from-scratch, or drop --peft to train every weight.",
        )
    targets: Any = None
    if cfg.lora_target_modules == "all-linear":  # peft's keyword: every linear layer
        targets = "all-linear"
    elif cfg.lora_target_modules != "auto":
        targets = [t.strip() for t in cfg.lora_target_modules.split(",") if t.strip()]
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=int(cfg.lora_alpha) if float(cfg.lora_alpha).is_integer() else cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets or _auto_targets(model),
        exclude_modules=heads or None,  # trained whole, not adapted
        modules_to_save=list(heads) or None,  # peft adds its defaults to this list
        task_type=TASK_TYPES.get(task),
    )
    architecture = type(model).__name__
    try:
        with _quiet():
            wrapped = get_peft_model(model, lora)
    except ValueError as exc:  # target modules that do not exist in this model
        raise ConfigError(
            f"LoRA cannot be applied: {str(exc).splitlines()[0][:300]}",
            "Name modules of this architecture in --lora-target-modules (comma-separated "
            "suffixes such as q_proj,v_proj), or use auto.",
        ) from None
    trainable, total = wrapped.get_nb_trainable_parameters()
    return wrapped, {
        "method": "lora",
        "architecture": architecture,  # the base model with the task's head
        "r": cfg.lora_r,
        "alpha": cfg.lora_alpha,
        "dropout": cfg.lora_dropout,
        "target_modules": sorted(
            getattr(wrapped.peft_config["default"], "target_modules", None) or []
        ),
        "modules_to_save": heads,
        "trainable_parameters": int(trainable),
        "total_parameters": int(total),
        "merged": bool(cfg.merge),
    }


def _auto_targets(model: Any) -> Any:
    """peft's default layers for the architecture where it has them, else every linear
    layer but the output head."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as known

    model_type = getattr(model.config, "model_type", None)
    return None if model_type in known else "all-linear"


def refuse_sharding(launch: Any) -> None:
    if launch.fsdp:
        raise ConfigError(
            "--peft lora does not run under FSDP in hubtool yet (the adapter's weights would "
            "have to be gathered from the shards).",
            "Launch with plain data parallelism (accelerate launch --multi_gpu) or train "
            "every weight.",
        )


def base_of(model_id: str) -> str | None:
    """The base model an adapter folder was trained on (None: not an adapter folder)."""
    import json

    path = Path(model_id) / ADAPTER_FILES[0]
    if not path.is_file():
        return None
    try:
        base = json.loads(path.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        base = None
    if not isinstance(base, str) or not base:
        raise UsageError(
            f"{path} names no base model (base_model_name_or_path).",
            "The adapter cannot be loaded without the model it was trained on.",
        )
    return base


def attach(model: Any, adapter_dir: str) -> Any:
    """The base model with the adapter applied and merged in (for evaluation)."""
    from peft import PeftModel

    try:
        with _quiet():
            return PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as exc:
        raise UsageError(
            f"The adapter in {adapter_dir} cannot be applied to its base model: "
            f"{str(exc).splitlines()[0][:300]}",
            "Evaluate the run directory (its run.json says how the model was trained).",
        ) from None


def save(model: Any, folder: Path, merge: bool) -> None:
    """The adapter (and its new heads) only, or with ``merge`` the merged full weights."""
    if merge:
        merged = copy.deepcopy(model).merge_and_unload()
        merged.save_pretrained(folder, safe_serialization=True)
        return
    model.save_pretrained(folder, safe_serialization=True)


def adapter_size(folder: Path) -> int | None:
    path = folder / "adapter_model.safetensors"
    return path.stat().st_size if path.exists() else None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """peft asks transformers a deprecated question (is_gradient_checkpointing): the
    FutureWarning it prints is not the user's to act on."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*is_gradient_checkpointing", FutureWarning)
        yield
