"""LoRA adapters through ``peft``: the base model frozen, low-rank updates trained in the
layers ``--lora-target-modules`` names (``auto``: peft's choice for the architecture, else
every linear layer), and every module the checkpoint did not have (a new ``classifier``,
``score`` or ``qa_outputs`` head) trained whole and saved with the adapter
(``modules_to_save``), so the published adapter reloads with its head.

The run's ``model/`` then holds ``adapter_config.json`` + ``adapter_model.safetensors`` and
the tokenizer; ``--merge`` writes the merged full weights there instead.

``--quantize 4bit|8bit`` (QLoRA) loads the frozen base through bitsandbytes: 4-bit NF4 with
double quantization, computing in the run's precision. The adapter trained on it applies to
the full-precision base it names; ``--merge`` merges it into that full-precision base."""

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


def quantization(quantize: str, precision: str) -> Any:
    """The bitsandbytes settings from_pretrained loads the base with (None: not quantized)."""
    if quantize == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    bitsandbytes_version()  # refuses clearly where it is not installed
    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtypes.get(precision, torch.float32),
    )


def quantized_among(model: Any, names: list[str]) -> bool:
    """Whether bitsandbytes quantized one of the modules ``names`` (or a part of one)."""
    modules = dict(model.named_modules())
    return any(
        "bitsandbytes" in type(part).__module__
        for name in names
        if name in modules  # an adapter's saved list may name modules this model lacks
        for part in modules[name].modules()
    )


def skipping(quantized: Any, model: Any, names: list[str]) -> Any:
    """The quantization settings with ``names`` kept in full precision, beside the modules
    transformers keeps so by default (the output embeddings, the last layer)."""
    import re

    from transformers.quantizers.base import get_keys_to_not_convert

    settings = copy.deepcopy(quantized)
    kept = {*get_keys_to_not_convert(model), *(quantized.llm_int8_skip_modules or [])}
    settings.llm_int8_skip_modules = sorted({*kept, *(re.escape(n) for n in names)})
    return settings


def bitsandbytes_version() -> str:
    """The installed bitsandbytes' version; refused in one paragraph where it is missing."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise UsageError(
            "--quantize loads the base model through bitsandbytes, which is not installed.",
            "pip install 'bitsandbytes>=0.48' (it runs on CUDA GPUs and on CPUs), or "
            "drop --quantize to load the base in full precision.",
        )
    return importlib.metadata.version("bitsandbytes")


def _quantization_record(model: Any, quantize: str) -> dict[str, Any] | None:
    if quantize == "none":
        return None
    q = getattr(model.config, "quantization_config", None)
    compute = getattr(q, "bnb_4bit_compute_dtype", None) if quantize == "4bit" else None
    return {
        "bits": 4 if quantize == "4bit" else 8,
        "type": "nf4, double quantization" if quantize == "4bit" else "LLM.int8()",
        "compute_dtype": str(compute).removeprefix("torch.") if compute is not None else None,
        "library": f"bitsandbytes {bitsandbytes_version()}",
    }


def wrap(model: Any, cfg: Any, task: str, heads: list[str]) -> tuple[Any, dict[str, Any]]:
    """The model with a LoRA adapter (base frozen); what run.json records of it."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

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
            if cfg.quantize != "none":  # norms and heads in fp32, inputs that carry gradients
                model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
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
        "quantization": _quantization_record(model, cfg.quantize),
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


def saved_heads(adapter_dir: str) -> list[str]:
    """The modules an adapter folder holds whole (its ``modules_to_save``)."""
    import json

    try:
        saved = json.loads((Path(adapter_dir) / ADAPTER_FILES[0]).read_text())
    except (OSError, ValueError):
        return []
    names = saved.get("modules_to_save") if isinstance(saved, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def attach(model: Any, adapter_dir: str) -> Any:
    """The base model with the adapter applied: merged in, except on a quantized base (a
    merge there would round the update into the quantized weights)."""
    from peft import PeftModel

    try:
        with _quiet():
            attached = PeftModel.from_pretrained(model, adapter_dir)
            if getattr(model, "is_quantized", False):
                return attached
            return attached.merge_and_unload()
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


def merge_into(base: Any, adapter_dir: Path, folder: Path, trained: Any) -> None:
    """The adapter saved in ``adapter_dir`` merged into ``base`` (full precision), written to
    ``folder`` with the configuration of the ``trained`` model (labels, padding, what the task
    recorded, its generation settings), less its quantization."""
    from peft import PeftModel

    with _quiet():
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.config = copy.deepcopy(trained.config)
    for key in ("quantization_config", "_pre_quantization_dtype"):
        merged.config.__dict__.pop(key, None)
    if getattr(trained, "generation_config", None) is not None:
        merged.generation_config = copy.deepcopy(trained.generation_config)
    merged.save_pretrained(folder, safe_serialization=True)


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
