"""Training stage: an Accelerate loop (one process, or many through ``accelerate launch``).

``prepare`` → ``accumulate`` → ``clip`` → step, with length-grouped batches and dynamic
padding, fused AdamW without decay on biases and norms, evaluation every epoch or N steps,
best-model tracking, early stopping, ``save_state`` checkpoints (the last K kept) and exact
resumption with ``load_state`` + ``skip_first_batches``. Only the main process writes files.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hubtool import tasks
from hubtool.core import rundir
from hubtool.core.hubclient import HubSettings
from hubtool.core.launch import Launch
from hubtool.core.rundir import RunDir
from hubtool.errors import ConfigError, TrainingFailed, UsageError
from hubtool.training import compiling, evaluation, precision, schedules
from hubtool.training.compiling import Compilation
from hubtool.training.config import FinetuneConfig, with_max_length
from hubtool.training.precision import Precision


@dataclass
class LoopState:
    """Counters saved in every checkpoint (registered with ``register_for_checkpointing``)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    log_lines: int = 0
    last_eval_step: int | None = None
    train_seconds: float = 0.0  # inside training steps only (this process)
    model_seconds: float = 0.0  # of which forward, backward and optimizer step
    samples: int = 0
    base_metrics: dict[str, float] | None = None  # the checkpoint's scores before training
    real_tokens: int = 0  # attention-mask tokens (this process)
    computed_tokens: int = 0  # batch positions, padding included (this process)

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class Run:
    """Everything the loop works with, built once by ``setup``."""

    cfg: FinetuneConfig
    run_dir: Path
    accelerator: Any
    model: Any
    tokenizer: Any
    data: Any
    optimizer: Any
    scheduler: Any
    train_loader: Any
    eval_loader: Any
    sampler: Any
    total_steps: int
    steps_per_epoch: int
    state: LoopState
    metric_name: str
    started: float
    tick: float = 0.0  # when the current training step began waiting for its batch
    on_save: Callable[[int, Path], None] | None = None  # main process, after each checkpoint
    hub: HubSettings | None = None  # for provenance (the commit the base model resolves to)
    resumes: list[dict[str, Any]] = field(default_factory=list)  # [{step, changed}]
    precision: Precision | None = None  # what --mixed-precision resolved to, and why
    compilation: Compilation | None = None  # whether --compile is on, and why
    # the fast paths in use: fast_cpu_dropout, allocator, task_forward (run.json "speed")
    speed: dict[str, Any] = field(default_factory=dict)
    adapter: dict[str, Any] | None = None  # --peft lora: what run.json records of it
    score_base: bool = False  # every module came from the checkpoint: score it untrained
    changed: dict[str, Any] = field(default_factory=dict)  # settings off hubtool's defaults
    meter: Any = None  # emissions.Meter on the main process, started with the run
    emissions: dict[str, Any] | None = None  # its record, once stopped
    baselines: list[dict[str, Any]] | None = None  # trivial predictors' scores, computed once

    @property
    def paths(self) -> RunDir:
        return RunDir(self.run_dir)


# -- building blocks ---------------------------------------------------------------------------
TOKENIZER_HINT = (
    "The checkpoint must ship its tokenizer (tokenizer.json or vocab files) and "
    "be a local folder or a Hub id on HF_ENDPOINT."
)


def load_tokenizer(model_id: str) -> Any:
    """The checkpoint's tokenizer; refuses the empty one transformers builds when the
    checkpoint has no tokenizer files (every word would become [UNK])."""
    from transformers import AutoConfig, AutoTokenizer

    from hubtool.training.adapters import base_of

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id)
        config = AutoConfig.from_pretrained(base_of(model_id) or model_id)
        vocab = getattr(config, "vocab_size", None)
    except Exception as exc:  # OSError, ValueError, and the tokenizers library's own errors
        raise UsageError(
            f"Cannot load a tokenizer for {model_id}: {_first_line(exc)}", TOKENIZER_HINT
        ) from exc
    if vocab and len(tokenizer) < min(vocab // 2, 1000):
        raise UsageError(
            f"Cannot load a tokenizer for {model_id}: the checkpoint has no "
            f"tokenizer files ({len(tokenizer)} tokens for a model of {vocab}).",
            TOKENIZER_HINT,
        )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # decoders (GPT-2, Llama) ship no padding
    return tokenizer


def align_padding(model: Any, tokenizer: Any) -> None:
    """The model's config knows the tokenizer's padding token (a decoder's classification
    head finds each example's last token by it)."""
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


def load_model(
    cfg: FinetuneConfig,
    task: str,
    labels: list[str] | None,
    multi_label: bool = False,
    placement: tuple[str, str] = ("no", "cpu"),
) -> tuple[Any, list[str]]:
    """The checkpoint's weights with the task's head, or (``from_scratch``) a seeded random
    initialisation of its architecture; and the modules the checkpoint had no weights for
    (a new head). A folder holding an adapter is loaded as its base model plus the adapter.
    ``placement`` (precision, device) is where a quantized base is loaded and computes."""
    import transformers

    from hubtool.training import adapters

    auto = getattr(transformers, tasks.get(task).auto_class)
    kwargs = _label_settings(labels, multi_label)
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the load report; we say what matters ourselves
    try:
        base = adapters.base_of(cfg.model) or cfg.model
        config = transformers.AutoConfig.from_pretrained(base, **kwargs)
        attention = _attention(auto, config)
        if cfg.from_scratch:
            return auto.from_config(config, **attention), []
        quantized = adapters.quantization(cfg.quantize, placement[0])
        if quantized is not None:  # loaded in place on the run's device, as bitsandbytes needs
            kwargs |= {"quantization_config": quantized, "device_map": {"": placement[1]}}
        model, info = auto.from_pretrained(
            base, ignore_mismatched_sizes=labels is not None, output_loading_info=True,
            **kwargs, **attention,
        )  # fmt: skip
        fresh = [*(info.get("missing_keys") or []), *_mismatched(info)]
        adapted = base != cfg.model
        heads = adapters.saved_heads(cfg.model) if adapted else adapters.new_modules(fresh, model)
        if quantized is not None and adapters.quantized_among(model, heads):
            # A new head is trained whole: loaded again with it (and the defaults) unquantized.
            kwargs["quantization_config"] = adapters.skipping(quantized, model, heads)
            model = auto.from_pretrained(
                base, ignore_mismatched_sizes=labels is not None, **kwargs, **attention
            )
        return (adapters.attach(model, cfg.model), []) if adapted else (model, heads)
    except ValueError as exc:
        raise UsageError(
            f"{cfg.model} cannot be trained for {task}: {str(exc).splitlines()[0]}",
            f"Choose a checkpoint whose architecture serves it: `hubtool search --task {task}` "
            "lists them.",
        ) from None
    except OSError as exc:
        raise UsageError(
            f"Cannot load {cfg.model}: {str(exc).splitlines()[0]}", _weights_hint(cfg.model)
        ) from None
    except Exception as exc:  # safetensors/torch errors on a truncated or corrupt file
        raise UsageError(
            f"The weights of {cfg.model} cannot be read: {_first_line(exc)}",
            "The file is truncated or corrupt: download or copy the checkpoint again.",
        ) from exc
    finally:
        hf_logging.set_verbosity(verbosity)


def _label_settings(labels: list[str] | None, multi_label: bool) -> dict[str, Any]:
    """from_pretrained's settings for a head over ``labels`` (none for an unlabelled task)."""
    if labels is None:
        return {}
    kwargs: dict[str, Any] = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
    }
    if multi_label:  # sigmoid + binary cross-entropy per label
        kwargs["problem_type"] = "multi_label_classification"
    return kwargs


def _mismatched(info: dict[str, Any]) -> list[str]:
    """Weights of the checkpoint replaced because their shape differs (a head for another
    number of labels): initialised anew, like missing ones."""
    return [
        m[0] if isinstance(m, (tuple, list)) else str(m) for m in info.get("mismatched_keys") or []
    ]


def _attention(auto: Any, config: Any) -> dict[str, Any]:
    """SDPA (PyTorch's fused attention) wherever the architecture implements it."""
    try:
        model_class = auto._model_mapping[type(config)]
    except (AttributeError, KeyError):  # not served by this head: from_pretrained says so
        return {}
    return {"attn_implementation": "sdpa"} if getattr(model_class, "_supports_sdpa", False) else {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _weights_hint(model_id: str) -> str | None:
    folder = Path(model_id)
    if folder.is_dir() and (folder / "config.json").exists():
        return (
            "The folder has a config but no weights. To train this architecture from "
            "random weights with the tokenizer it holds, pass --from-scratch."
        )
    return None


def build_optimizer(model: Any, cfg: FinetuneConfig) -> Any:
    """AdamW (fused where supported) without weight decay on biases and norm weights."""
    import torch

    decay: list[Any] = []
    no_decay: list[Any] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        plain = name.endswith("bias") or "norm" in name.lower() or param.ndim < 2
        (no_decay if plain else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr)


def build_loaders(
    cfg: FinetuneConfig, data: Any, tokenizer: Any, pad_multiple: int | None = None
) -> tuple[Any, Any, Any]:
    from torch.utils.data import DataLoader

    from hubtool.training.batching import LengthGroupedBatchSampler
    from hubtool.training.slicing import WithRows

    task = tasks.get(data.task)
    collate = task.collator(tokenizer, cfg, pad_multiple)
    sampler = LengthGroupedBatchSampler(
        data.train["length"], cfg.batch_size, cfg.seed, group=cfg.group_by_length
    )
    # Loaders get their own generator: an iterator's seed draw must not touch the global
    # RNG, or a resumed run would see different dropout masks than an uninterrupted one.
    train = DataLoader(
        data.train, batch_sampler=sampler, collate_fn=collate, generator=_loader_generator(cfg.seed)
    )
    validation, eval_collate = task.evaluation_set(data.validation, collate, cfg.seed)
    eval_collate = WithRows(eval_collate)  # each example's row travels beside its inputs
    eval_sampler = LengthGroupedBatchSampler(
        validation["length"], cfg.eval_batch_size or cfg.batch_size * 2, cfg.seed, shuffle=False
    )
    evaluation_loader = DataLoader(
        validation,
        batch_sampler=eval_sampler,
        collate_fn=eval_collate,
        generator=_loader_generator(cfg.seed),
    )
    return sampler, train, evaluation_loader


def _loader_generator(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(seed)


def tracker_of(cfg: FinetuneConfig) -> str | None:
    """The tracker the run logs to: tensorboard when asked (refused where it is not
    installed) or, with auto, where it is installed; None otherwise."""
    import importlib.util

    installed = bool(
        importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    )
    if cfg.report_to == "tensorboard" and not installed:
        raise ConfigError(
            "--report-to tensorboard needs the tensorboard package.", "pip install tensorboard"
        )
    return (
        "tensorboard"
        if cfg.report_to == "tensorboard" or (cfg.report_to == "auto" and installed)
        else None
    )


def make_accelerator(
    cfg: FinetuneConfig, run_dir: Path, launch: Launch, precision: Precision
) -> Any:
    from accelerate import Accelerator

    log_with = tracker_of(cfg)
    cpus = _cpu_processes(launch)
    return Accelerator(
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=precision.used,
        log_with=log_with,
        project_dir=str(RunDir(run_dir).logs),
        cpu=cpus and not launch.fsdp,  # N CPU processes: gloo (MULTI_CPU)
        fsdp_plugin=_cpu_fsdp_plugin(launch) if cpus and launch.fsdp else None,
    )


def _cpu_fsdp_plugin(launch: Launch) -> Any:
    """FSDP over N CPU processes on gloo. Accelerate shards only on accelerator devices: on
    CPUs it would run plain data parallelism and say nothing, so the process group is made
    on CPU and then labelled as a multi-device one, which Accelerate's FSDP path accepts."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if launch.fsdp_version != 2:
        raise ConfigError(
            f"FSDP version {launch.fsdp_version} cannot checkpoint on CPU processes (its "
            "full state dict crashes and its sharded one restores the optimizer wrongly).",
            "Add --fsdp_version 2 to `accelerate launch` (or fsdp_version: 2 in the "
            "accelerate config).",
        )
    PartialState(cpu=True)
    PartialState._shared_state["distributed_type"] = DistributedType.MULTI_GPU
    # Loading on rank 0 only and broadcasting needs an accelerator device: every rank loads.
    return FullyShardedDataParallelPlugin(fsdp_version=2, cpu_ram_efficient_loading=False)


def _cpu_processes(launch: Launch) -> bool:
    """A launch of several processes on a machine without CUDA: they run on CPUs (gloo)."""
    return launch.distributed and not precision.gpu_available()


# -- setup ---------------------------------------------------------------------------------------
def setup(
    cfg: FinetuneConfig,
    overwrite: bool,
    resume: str | None,
    hub: HubSettings | None = None,
    launch: Launch | None = None,
) -> Run:
    config = checkpoint_config(cfg.model)
    changed = cfg.changed()  # what the user set, before defaults are resolved
    cfg = with_max_length(cfg, position_limit(config))
    rundir.check_target(cfg.run_dir, overwrite, resume is not None)  # on every process
    resumed = None
    if resume is not None:  # other settings are refused before torch and the data load
        from hubtool.training.resume import resume_point

        resumed = resume_point(cfg.run_dir, resume, cfg)
    from accelerate.utils import set_seed

    from hubtool.training.features import prepare_data

    run_dir = rundir.work_dir(cfg.run_dir, overwrite, resume is not None)
    launch = launch or Launch()
    cache = hub.cache_dir if hub else None
    mixed = precision.choose(cfg.mixed_precision, cache, _cpu_processes(launch))
    accelerator = make_accelerator(cfg, run_dir, launch, mixed)
    if accelerator.is_main_process:
        rundir.prepare(cfg.run_dir, overwrite, resume is not None)
    meter = _start_meter(cfg, accelerator)
    accelerator.wait_for_everyone()
    set_seed(cfg.seed)
    if cfg.task != "auto":  # before the data is read: the checkpoint alone says so
        refuse_unfit(cfg.model, config, cfg.task)
    if cfg.quantize != "none":
        from hubtool.training.adapters import bitsandbytes_version

        bitsandbytes_version()
    tokenizer = load_tokenizer(cfg.model)
    with accelerator.main_process_first():
        data = prepare_data(cfg, tokenizer, hub)
    if cfg.task == "auto":  # the task the data named
        refuse_unfit(cfg.model, config, data.task)
    model, heads = load_model(
        cfg, data.task, data.label_names, data.multi_label, (mixed.used, str(accelerator.device))
    )
    align_padding(model, tokenizer)
    tasks.get(data.task).configure(model, data.stats.get("preparation") or {})
    tasks.get(data.task).check_model(model, cfg, data.stats.get("preparation") or {})
    adapter = None
    if cfg.peft == "lora":
        from hubtool.training import adapters

        adapters.refuse_sharding(launch)
        model, adapter = adapters.wrap(model, cfg, data.task, heads)
    speed = _cpu_paths(model, accelerator)
    compiled = compiling.choose(
        cfg.compile, str(accelerator.device), _planned_steps(cfg, data, accelerator)
    )
    if compiled.used:
        compiling.compile_model(model)
    sampler, train_loader, eval_loader = build_loaders(cfg, data, tokenizer, compiled.pad_multiple)
    probe = next(iter(eval_loader))
    probe.pop("row", None)  # the example's row: no model input
    speed["task_forward"] = tasks.get(data.task).train_faster(model, probe)
    optimizer = build_optimizer(model, cfg)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(
        model, optimizer, train_loader, eval_loader
    )
    # Sized from the prepared loader: with N processes each one sees 1/N of the batches.
    steps_per_epoch, total = _schedule(cfg, len(train_loader))
    # Not prepared: Accelerate would step it once per process at every optimizer step.
    # The loop steps it once per optimizer step, so the schedule is the same for any N.
    scheduler = schedules.make(cfg.scheduler, optimizer, int(cfg.warmup_ratio * total), total)
    accelerator.register_for_checkpointing(scheduler)
    state = LoopState()
    accelerator.register_for_checkpointing(state)
    metric_name = cfg.metric_for_best or tasks.get(data.task).best_for(data.multi_label)
    run = Run(
        cfg,
        run_dir,
        accelerator,
        model,
        tokenizer,
        data,
        optimizer,
        scheduler,
        train_loader,
        eval_loader,
        sampler,
        total,
        steps_per_epoch,
        state,
        metric_name,
        time.time(),
        hub=hub,
        precision=mixed,
        compilation=compiled,
        speed=speed,
        adapter=adapter,
        score_base=not cfg.from_scratch and not heads,
        changed=changed,
        meter=meter,
    )
    if resumed is not None:
        restore(run, *resumed)
    if meter is not None:  # a resumed run is measured from its checkpoint's step
        meter.from_step = run.state.step
    _freeze_setup_objects()
    return run


def _freeze_setup_objects() -> None:
    """Move everything setup made (modules, model, data, tokenizer: millions of objects) out
    of the cyclic garbage collector's reach. A full collection during training would walk
    them all (0.1–0.2 s a time, at moments set by allocation counts); what the loop creates
    afterwards is still collected."""
    import gc

    gc.collect()
    gc.freeze()


def _cpu_paths(model: Any, accelerator: Any) -> dict[str, Any]:
    """On CPUs: dropout masks from 16-bit thresholds (training/dropout.py), and freed
    memory kept for reuse (training/allocator.py)."""
    if accelerator.device.type != "cpu":
        return {"fast_cpu_dropout": False, "allocator": None}
    from hubtool.training import allocator, dropout

    return {
        "fast_cpu_dropout": dropout.speed_up(model),
        "allocator": allocator.keep_freed_memory(),
    }


def _planned_steps(cfg: FinetuneConfig, data: Any, accelerator: Any) -> int:
    """The run's optimizer steps, known before the loaders are prepared."""
    batches = math.ceil(len(data.train) / (cfg.batch_size * accelerator.num_processes))
    return _schedule(cfg, batches)[1]


def _schedule(cfg: FinetuneConfig, batches: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps) for ``batches`` batches per epoch."""
    per_epoch = max(math.ceil(batches / cfg.grad_accum), 1)
    return per_epoch, cfg.max_steps or math.ceil(per_epoch * cfg.epochs)


def checkpoint_config(model_id: str) -> Any:
    """The checkpoint's config.json (a UsageError when it cannot be read)."""
    from transformers import AutoConfig

    from hubtool.training.adapters import base_of

    rundir.refuse_lfs_pointers(Path(model_id))
    try:
        return AutoConfig.from_pretrained(base_of(model_id) or model_id)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"Cannot load {model_id}: {str(exc).splitlines()[0]}",
            "Give a local checkpoint folder or a model id on HF_ENDPOINT.",
        ) from None


def position_limit(config: Any) -> int | None:
    """The most tokens the architecture takes (None: no fixed limit)."""
    # an encoder-decoder built from two checkpoints (BERT2BERT): the encoder's limit
    limit = getattr(getattr(config, "encoder", config), "max_position_embeddings", None)
    if limit and config.model_type in ("roberta", "camembert", "xlm-roberta"):
        limit -= 2
    return limit


def refuse_unfit(model_id: str, config: Any, task: str) -> None:
    """Refuse a checkpoint that search calls ``no`` for the task, with search's reason."""
    fit = tasks.fit(task, None, list(config.architectures or []), config.model_type)
    if fit.level == "no":
        raise UsageError(
            f"{model_id} cannot be trained for {task}: {fit.how}.",
            f"`hubtool search --task {task}` lists checkpoints that can.",
        )


def restore(run: Run, checkpoint: Path, changed: dict[str, list[Any]]) -> None:
    """Load ``checkpoint`` (found, and its setting ``changed`` checked, by
    ``resume.resume_point``) into the run."""
    from hubtool.training import resume

    try:
        run.accelerator.load_state(str(checkpoint))
    except Exception as exc:  # torch/safetensors/pickle errors on a damaged checkpoint
        raise UsageError(
            f"The checkpoint {checkpoint} cannot be loaded: {str(exc).splitlines()[0][:200]}",
            "Resume from an earlier one (--resume RUN_DIR/checkpoints/step-N) or start again.",
        ) from None
    changed |= resume.precision_change(run.run_dir, run.precision)
    run.resumes = resume.history(run.run_dir, run.state.step, changed)
    log = run.paths.train_log
    if run.accelerator.is_main_process and log.exists():
        lines = log.read_text().splitlines(keepends=True)[: run.state.log_lines]
        log.write_text("".join(lines))
    where = f"step {run.state.step}, epoch {run.state.epoch}"
    say(run, f"Resumed from {checkpoint.resolve()} ({where}).")
    for name, (before, now) in changed.items():
        say(run, f"  {name}: {before} -> {now} from step {run.state.step} (recorded in run.json)")


# -- the loop ------------------------------------------------------------------------------------
def train(run: Run, progress: bool = True) -> dict[str, Any]:
    """Train to the end (or early stop); returns the best evaluation's metrics."""
    from tqdm.auto import tqdm

    acc, cfg, state = run.accelerator, run.cfg, run.state
    if acc.is_main_process:
        write_run_json(run, "running")
    if acc.log_with:  # logs/tensorboard/ (pushed as runs/), only once every check has passed
        settings = {k: v for k, v in cfg.as_dict().items() if isinstance(v, (int, float, str))}
        acc.init_trackers("tensorboard", config=settings)
    bar = tqdm(
        total=run.total_steps,
        initial=state.step,
        unit="step",
        dynamic_ncols=True,
        disable=not (progress and acc.is_main_process),
    )
    best = _best_so_far(run)
    if run.score_base and state.step == 0 and state.base_metrics is None:
        state.base_metrics = _base_scores(run)
    run.model.train()  # from_pretrained returns the model in eval mode: dropout off
    epochs = math.ceil(run.total_steps / run.steps_per_epoch)
    while state.step < run.total_steps and state.epoch < epochs and not _stopped(run):
        loader = run.train_loader
        if state.batch_in_epoch:
            loader = acc.skip_first_batches(run.train_loader, state.batch_in_epoch)
        # Accelerate's loaders pass their own epoch counter to the sampler when iterated;
        # set it, so a resumed run shuffles each epoch exactly as an uninterrupted one.
        loader.set_epoch(state.epoch)
        run.sampler.set_epoch(state.epoch)
        run.tick = time.perf_counter()
        for batch in loader:
            loss = _train_step(run, batch)
            state.batch_in_epoch += 1
            if not acc.sync_gradients:
                continue
            state.step += 1
            lr = run.scheduler.get_last_lr()[0]
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
            log(run, {"step": state.step, "epoch": state.epoch, "loss": loss, "lr": lr})
            best = _after_step(run, best, step_end=True)
            run.tick = time.perf_counter()  # evaluation and checkpoints are not training time
            if state.step >= run.total_steps or _stopped(run):
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
            best = _after_step(run, best, step_end=False)
    if state.last_eval_step != state.step:  # the last step is always evaluated
        best = _evaluate_and_keep(run, best)
    bar.close()
    acc.wait_for_everyone()
    acc.end_training()
    return best or {}


def _train_step(run: Run, batch: dict[str, Any]) -> float:
    state = run.state
    ids = batch["input_ids"]
    state.samples += int(ids.shape[0])
    state.computed_tokens += int(ids.numel())
    mask = batch.get("attention_mask")
    state.real_tokens += int(mask.sum()) if mask is not None else int(ids.numel())
    start = time.perf_counter()
    loss = _optimizer_step(run, batch)  # float(loss) waits for a GPU: the timing is real
    now = time.perf_counter()  # since the previous step: batch loading included
    state.model_seconds += now - start
    state.train_seconds += now - run.tick
    run.tick = now
    return loss


def _optimizer_step(run: Run, batch: dict[str, Any]) -> float:
    acc = run.accelerator
    with acc.accumulate(run.model):
        loss = run.model(**batch).loss
        _refuse_non_finite(run, loss)
        acc.backward(loss)
        if acc.sync_gradients:
            acc.clip_grad_norm_(run.model.parameters(), run.cfg.max_grad_norm)
        run.optimizer.step()
        if acc.sync_gradients and not acc.optimizer_step_was_skipped:
            run.scheduler.step()
        run.optimizer.zero_grad()
    return float(loss.detach())


def _refuse_non_finite(run: Run, loss: Any) -> None:
    """Stop before a NaN/inf loss reaches the weights (on every process at once)."""
    import torch

    finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
    if run.accelerator.num_processes > 1:
        finite = run.accelerator.reduce(finite, reduction="min")
    if bool(finite.item()):
        return
    raise _diverged(run, f"the training loss is {float(loss.detach())}")


def _diverged(run: Run, what: str) -> TrainingFailed:
    kept = [f"checkpoint {c.name}" for c in rundir.checkpoints(run.run_dir)[-1:]]
    kept += ["the best model so far (model/)"] if run.paths.model.is_dir() else []
    where = f"{' and '.join(kept)} in {run.run_dir.resolve()} are kept" if kept else "nothing"
    staged = run.run_dir != run.cfg.run_dir  # --overwrite: the previous run was not touched
    untouched = f"; the previous run in {run.cfg.run_dir} is untouched" if staged else ""
    return TrainingFailed(
        f"Training diverged at step {run.state.step + 1}: {what}. The run stopped before "
        f"that step reached the weights: {where}{untouched}.",
        "Lower --lr or --weight-decay or keep --max-grad-norm small (with fp16, try "
        "--mixed-precision no), then run the same command again with --overwrite.",
    )


def _after_step(run: Run, best: dict[str, Any] | None, step_end: bool) -> dict[str, Any] | None:
    """Evaluate and checkpoint when the schedule says so (every N steps, or per epoch)."""
    cfg, state = run.cfg, run.state
    eval_n, save_n = cfg.every("eval"), cfg.every("save")
    due_eval = (eval_n is not None and state.step % eval_n == 0) if step_end else eval_n is None
    due_save = (save_n is not None and state.step % save_n == 0) if step_end else save_n is None
    if due_eval:
        best = _evaluate_and_keep(run, best)
    if due_save:
        save_checkpoint(run)
    return best


def _stopped(run: Run) -> bool:
    patience = run.cfg.early_stopping
    return patience is not None and run.state.bad_evals >= patience


def _best_so_far(run: Run) -> dict[str, Any] | None:
    path = run.paths.metrics
    if run.state.best_step is not None and path.exists():
        return rundir.read_json(path)
    return None


def _start_meter(cfg: FinetuneConfig, accelerator: Any) -> Any:
    """The emissions meter, on the main process (None elsewhere, or when not measured)."""
    from hubtool.training import emissions

    if not (cfg.emissions and emissions.available()):
        return None
    emissions.check_country(cfg.emissions_country)
    if not accelerator.is_main_process:
        return None
    meter = emissions.Meter(cfg.emissions_country, cfg.emissions_region, accelerator.num_processes)
    return meter.start()


def _emissions_record(run: Run) -> dict[str, Any]:
    from hubtool.training import emissions

    if run.emissions is not None:
        return run.emissions
    if not run.cfg.emissions:
        return {"measured": False, "reason": "not asked (--no-emissions)"}
    if not emissions.available():
        return {"measured": False, "reason": "codecarbon is not installed"}
    return {"measured": False, "reason": "the run is not finished"}


def _base_scores(run: Run) -> dict[str, float]:
    """The checkpoint's validation scores before any training step (its head is its own:
    perplexity for a language model, zero-shot for a head it already had)."""
    predictions = evaluation.predict(
        run.accelerator, run.model, run.eval_loader, run.data.task, run.cfg, run.tokenizer
    )
    scores = evaluation.scalars(evaluation.compute(predictions, run.data.label_names))
    say(run, "before training: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return {k: v for k, v in scores.items() if math.isfinite(v)}


def _evaluate_and_keep(run: Run, best: dict[str, Any] | None) -> dict[str, Any] | None:
    acc, state = run.accelerator, run.state
    predictions = evaluation.predict(
        acc, run.model, run.eval_loader, run.data.task, run.cfg, run.tokenizer
    )
    metrics = evaluation.compute(predictions, run.data.label_names)
    value = float(metrics[run.metric_name]) if run.metric_name in metrics else None
    broken = [k for k, v in evaluation.scalars(metrics).items() if not math.isfinite(float(v))]
    if broken:
        raise _diverged(run, f"the validation {', '.join(broken)} is not a finite number")
    if value is None:
        raise ConfigError(
            f"metric_for_best {run.metric_name!r} is not computed for {run.data.task}.",
            f"Metrics: {', '.join(evaluation.scalars(metrics))}",
        )
    state.last_eval_step = state.step
    log(run, {"step": state.step, "epoch": state.epoch, "eval": evaluation.scalars(metrics)})
    say(
        run,
        f"step {state.step}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in evaluation.scalars(metrics).items()),
    )
    if evaluation.better(run.metric_name, value, state.best_metric):
        state.best_metric, state.best_step, state.bad_evals = value, state.step, 0
        if predictions.threshold is not None:  # multi-label: saved in the model's config
            acc.unwrap_model(run.model).config.multi_label_threshold = predictions.threshold
        save_model(run)
        best = metrics_document(run, metrics, predictions)
        if acc.is_main_process:
            rundir.write_json(run.paths.metrics, best)
    else:
        state.bad_evals += 1
    acc.wait_for_everyone()
    return best


# -- writing -------------------------------------------------------------------------------------
def say(run: Run, line: str) -> None:
    """A line for the user from the main process, above the progress bar."""
    if run.accelerator.is_main_process:
        from hubtool.core.output import note

        note(line)


def log(run: Run, entry: dict[str, Any]) -> None:
    run.state.log_lines += 1
    if run.accelerator.is_main_process:
        with open(run.paths.train_log, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        if run.accelerator.trackers:
            if "eval" in entry:  # eval/loss apart from train/loss, as the Hub's tab groups them
                flat = {f"eval/{k}": v for k, v in entry["eval"].items()}
            else:
                flat = {f"train/{k}": v for k, v in entry.items() if k in ("loss", "lr")}
            run.accelerator.log(flat, step=entry["step"])


def save_model(run: Run) -> None:
    acc = run.accelerator
    acc.wait_for_everyone()
    # Under FSDP the weights are sharded: every process takes part in gathering them.
    full = acc.get_state_dict(run.model) if _sharded(acc) else None
    if acc.is_main_process:
        tmp = run.run_dir / ".model.tmp"
        model = acc.unwrap_model(run.model)
        if run.adapter is not None:
            from hubtool.training import adapters

            # a quantized base is merged once, at the end (merge_quantized)
            adapters.save(model, tmp, run.cfg.merge and run.cfg.quantize == "none")
        else:
            model.save_pretrained(tmp, safe_serialization=True, state_dict=full)
        run.tokenizer.save_pretrained(tmp)
        rundir.replace_dir(tmp, run.paths.model)
    acc.wait_for_everyone()


def merge_quantized(run: Run) -> None:
    """``--quantize … --merge``: the best adapter merged into the base loaded again in full
    precision (merged into the quantized weights it would be rounded to them)."""
    from hubtool.training import adapters

    cfg = replace(run.cfg, quantize="none")
    base, _ = load_model(cfg, run.data.task, run.data.label_names, run.data.multi_label)
    tmp = run.run_dir / ".model.tmp"
    trained = run.accelerator.unwrap_model(run.model).get_base_model()
    adapters.merge_into(base, run.paths.model, tmp, trained)
    run.tokenizer.save_pretrained(tmp)
    rundir.replace_dir(tmp, run.paths.model)


def _sharded(accelerator: Any) -> bool:
    """FSDP or DeepSpeed: the whole weights must be gathered from the processes."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def save_checkpoint(run: Run) -> None:
    acc, state = run.accelerator, run.state
    final = run.paths.checkpoint(state.step)
    tmp = final.with_name(f".{final.name}.tmp")
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        from hubtool.training.resume import save_config

        save_config(tmp, run.cfg)
        rundir.write_json(tmp / "hubtool_state.json", state.state_dict())
        rundir.replace_dir(tmp, final)
        rundir.prune(run.run_dir, run.cfg.keep_checkpoints)
        if run.on_save is not None:
            run.on_save(state.step, final)
    acc.wait_for_everyone()


def metrics_document(run: Run, metrics: dict[str, Any], predictions: Any) -> dict[str, Any]:
    source = run.data.source
    doc = evaluation.document(
        run.data.task,
        source,
        source.get("split"),
        predictions,
        metrics,
        _baselines(run, predictions),
        run.data.groups,
        label_names=run.data.label_names,
    )
    return {
        **doc,
        "metric_for_best": run.metric_name,
        "step": run.state.step,
        "epoch": run.state.epoch,
    }


def _baselines(run: Run, predictions: Any) -> list[dict[str, Any]]:
    """The trivial predictors' scores (computed at the first evaluation: the validation split
    does not change), and the checkpoint's own before training where it was measured."""
    if run.baselines is None:
        stats = run.data.stats
        train = {
            "counts": (stats.get("label_distribution") or {}).get("train") or {},
            "rows": stats.get("train_rows"),
        }
        run.baselines = tasks.get(run.data.task).baselines(predictions, run.data.label_names, train)
    if not run.state.base_metrics:
        return run.baselines
    base = {
        "name": "base",
        "label": "Base model",
        "about": "the checkpoint before fine-tuning, scored the same way",
        "metrics": run.state.base_metrics,
    }
    return [*run.baselines, base]


def throughput(run: Run) -> dict[str, Any]:
    """Training speed of the main process (multiply samples by processes for the total)."""
    st = run.state
    seconds = st.train_seconds or float("nan")
    return {
        "train_seconds": round(st.train_seconds, 2),
        "samples": st.samples,
        "samples_per_second": round(st.samples / seconds, 2) if st.samples else None,
        "real_tokens": st.real_tokens,
        "computed_tokens": st.computed_tokens,
        "real_tokens_per_second": round(st.real_tokens / seconds, 1) if st.samples else None,
        "padding_ratio": round(st.computed_tokens / st.real_tokens, 3) if st.real_tokens else None,
        # batch loading, collation and bookkeeping: the share of training time not in the model
        "outside_model_share": (
            round(1 - st.model_seconds / st.train_seconds, 3) if st.train_seconds else None
        ),
        "processes": run.accelerator.num_processes,
    }


def _speed_record(run: Run) -> dict[str, Any]:
    used = getattr(run.accelerator.unwrap_model(run.model).config, "_attn_implementation", None)
    if run.speed.get("fast_cpu_dropout"):
        from hubtool.training.dropout import ATTENTION

        used = "sdpa" if used == ATTENTION else used  # SDPA with the cheaper dropout mask
    return {"attention": used, **run.speed}


def _compile_record(run: Run) -> dict[str, Any] | None:
    if run.compilation is None:
        return None
    seconds = compiling.compile_seconds() if run.compilation.used else None
    return {**run.compilation.as_dict(), "seconds": seconds}


def _adapter_record(run: Run) -> dict[str, Any] | None:
    """The adapter's settings and parameter counts, with the size of the one in model/."""
    if run.adapter is None:
        return None
    from hubtool.training.adapters import adapter_size

    return {**run.adapter, "adapter_bytes": adapter_size(run.paths.model)}


def write_run_json(run: Run, status: str) -> None:
    from hubtool.core.hubclient import revision_of

    acc = run.accelerator
    document = {
        "status": status,
        "config": run.cfg.as_dict(),
        "changed_settings": run.changed,
        "task": run.data.task,
        "labels": run.data.label_names,
        "multi_label": run.data.multi_label,
        "columns": {
            "text": run.data.text_column,
            "text_pair": run.data.text_pair_column,
            "label": run.data.label_column,
        },
        "base_model": {
            "id": run.cfg.model,
            "revision": revision_of(run.hub, run.cfg.model),
            "from_scratch": run.cfg.from_scratch,  # only the architecture and tokenizer used
        },
        "dataset": run.data.source,
        "data": run.data.stats,
        "steps": {
            "total": run.total_steps,
            "per_epoch": run.steps_per_epoch,
            "done": run.state.step,
        },
        "throughput": throughput(run),
        "precision": run.precision.as_dict() if run.precision else None,
        "compile": _compile_record(run),
        "speed": _speed_record(run),
        "resumes": run.resumes,
        "adapter": _adapter_record(run),
        "emissions": _emissions_record(run),
        "seed": run.cfg.seed,
        "hardware": {
            **rundir.hardware(acc.num_processes, str(acc.device)),
            "distributed": acc.distributed_type.value,  # NO, MULTI_CPU, MULTI_GPU, FSDP…
        },
        "versions": rundir.versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started)),
        "duration_s": round(time.time() - run.started, 1),
    }
    rundir.write_json(run.paths.run_json, document)


# Loggers whose warnings the user can do nothing about (Accelerate's "Removed shared tensor"
# for tied weights, which from_pretrained ties again).
QUIET_LOGGERS = (
    "accelerate.utils.other",
    "accelerate.checkpointing",
    "accelerate.accelerator",
    # on a bf16 CPU it looks for an optional faster kernel on the Hub and says so when absent
    "bitsandbytes.backends.cpu.ops",
)


def quiet_libraries(progress: bool) -> None:
    """transformers' per-file bars are noise here; datasets' bars only when progress is on."""
    import logging

    import datasets
    from transformers.utils import logging as hf_logging

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    if not progress:
        datasets.disable_progress_bars()


def finetune(
    cfg: FinetuneConfig,
    overwrite: bool = False,
    resume: str | None = None,
    progress: bool = True,
    on_save: Callable[[int, Path], None] | None = None,
    hub: HubSettings | None = None,
    launch: Launch | None = None,
) -> Path | None:
    """The whole stage: set up, train, write run.json; returns the run directory on the
    main process (None on the others). ``on_save`` is called after each checkpoint; ``hub``
    is asked which commits the model and data ids resolve to (provenance)."""
    quiet_libraries(progress)
    run = setup(cfg, overwrite, resume, hub, launch)
    if run.accelerator.is_main_process:
        run.on_save = on_save
    try:
        with rundir.storage(f"Writing the run in {run.run_dir}", run.run_dir):
            train(run, progress)
    except TrainingFailed:
        if run.accelerator.is_main_process:
            write_run_json(run, "failed")
        raise
    if not run.accelerator.is_main_process:
        return None
    with rundir.storage(f"Writing the run in {run.run_dir}", run.run_dir):
        if cfg.merge and cfg.quantize != "none":
            merge_quantized(run)
        if run.meter is not None:
            run.emissions = {**run.meter.stop(), "from_step": run.meter.from_step}
        write_run_json(run, "complete")
        rundir.swap_in(run.run_dir, cfg.run_dir)  # an overwritten run is replaced only now
    return cfg.run_dir
