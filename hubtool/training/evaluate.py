"""``hubtool evaluate``: metrics of a checkpoint (or a run's model) on a dataset split."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hubtool import tasks
from hubtool.core import rundir
from hubtool.core.architectures import head_of
from hubtool.core.hubclient import HubSettings
from hubtool.core.rundir import RunDir
from hubtool.errors import UsageError
from hubtool.training import data, evaluation, slicing
from hubtool.training.adapters import base_of
from hubtool.training.config import FinetuneConfig, with_max_length
from hubtool.training.precision import gpu_available


def evaluate_model(
    target: str,
    options: dict[str, Any],
    bootstrap: int,
    extra_metrics: list[str],
    output: Path | None,
    hub: HubSettings | None = None,
) -> tuple[dict[str, Any], Path | None]:
    """(metrics document, where it was written or None for stdout)."""
    from accelerate import Accelerator

    from hubtool.training.loop import checkpoint_config, load_tokenizer, position_limit

    run_dir = Path(target) if (Path(target) / "model").is_dir() else None
    model_path = str(RunDir(run_dir).model) if run_dir else target
    trained_in = run_dir  # the run whose settings apply (an adapter's RUN/model: RUN)
    if run_dir is None and base_of(target) and (Path(target).parent / "run.json").is_file():
        trained_in = Path(target).parent
    tokenizer = load_tokenizer(model_path)
    config = checkpoint_config(model_path)
    task = options["task"] if options["task"] != "auto" else _task_of(config, trained_in)
    labelled = tasks.get(task).labelled
    labels = [config.id2label[i] for i in sorted(config.id2label)] if labelled else None
    multi = getattr(config, "problem_type", None) == "multi_label_classification"
    prepared_as = None  # an adapter: how its run prepared the data (its base knows nothing)
    if base_of(model_path) is not None:
        labels, multi, prepared_as, threshold = _adapter_facts(model_path, trained_in, labelled)
        config.multi_label_threshold = threshold
    if extra_metrics and not tasks.get(task).predicts:
        raise UsageError(f"Extra metrics need predictions and references; {task} has only losses.")
    if extra_metrics and multi:
        raise UsageError(
            "Extra metrics take one class id per example; this model is multi-label.",
            "Its micro/macro F1, subset accuracy and per-label scores are computed already.",
        )
    extras = [evaluation.metric(name) for name in extra_metrics]  # before the data and model
    cfg = _data_config(model_path, position_limit(config), task, options, trained_in)
    split_ds, source = _load_split(cfg, options["split"], hub)
    prepared, groups = _prepare_split(split_ds, cfg, task, labels, tokenizer, multi)
    accelerator = Accelerator(mixed_precision=_run_precision(run_dir))
    predictions = _predict(
        accelerator, model_path, task, labels, cfg, prepared, tokenizer, multi, prepared_as
    )
    if multi:  # the threshold tuned on validation in training, not one tuned on this split
        predictions.threshold = getattr(config, "multi_label_threshold", None) or 0.5
    metrics = evaluation.compute(predictions, labels)
    metrics.update(_extra_metrics(extras, predictions))
    document = {
        "model": model_path,
        **evaluation.document(
            task,
            source,
            options["split"],
            predictions,
            metrics,
            tasks.get(task).baselines(predictions, labels, _train_labels(trained_in)),
            groups,
            bootstrap or slicing.RESAMPLES,
            labels,
        ),
    }
    if bootstrap:
        document["confidence_intervals"] = {
            "level": 0.95,
            "resamples": bootstrap,
            **evaluation.bootstrap(predictions, labels, bootstrap),
        }
    destination = output or (run_dir / _metrics_name(run_dir, document) if run_dir else None)
    if destination is not None and accelerator.is_main_process:
        rundir.write_json(destination, document)
    return document, destination


def _predict(
    accelerator: Any,
    model_path: str,
    task: str,
    labels: list[str] | None,
    cfg: FinetuneConfig,
    prepared: Any,
    tokenizer: Any,
    multi: bool = False,
    prepared_as: dict[str, Any] | None = None,
) -> evaluation.Predictions:
    from hubtool.training.loop import align_padding, load_model

    placement = (str(accelerator.mixed_precision), str(accelerator.device))
    model, _ = load_model(cfg, task, labels, multi, placement)
    align_padding(model, tokenizer)
    if prepared_as is not None:  # an adapter: what its run recorded on the trained model
        tasks.get(task).configure(model, prepared_as)
    model, loader = accelerator.prepare(model, _loader(cfg, prepared, task, tokenizer))
    return evaluation.predict(accelerator, model, loader, task, cfg, tokenizer)


def _adapter_facts(
    model_path: str, run_dir: Path | None, labelled: bool
) -> tuple[list[str] | None, bool, dict[str, Any], float | None]:
    """An adapter's labels, multi-label flag, data preparation and decision threshold, from
    the run that trained it."""
    if run_dir is None:
        raise UsageError(
            f"{model_path} is a LoRA adapter: its labels and settings are in the run that "
            "trained it, not in the folder.",
            "Evaluate the run directory (the --output-dir of `hubtool finetune`).",
        )
    run = rundir.read_json(RunDir(run_dir).run_json)
    metrics = RunDir(run_dir).metrics
    decision: dict[str, Any] = {}
    if metrics.exists():
        decision = (rundir.read_json(metrics).get("details") or {}).get("decision") or {}
    labels = run.get("labels") if labelled else None
    prepared = (run.get("data") or {}).get("preparation") or {}
    return labels, bool(run.get("multi_label")), prepared, decision.get("threshold")


def _train_labels(run_dir: Path | None) -> dict[str, Any]:
    """The label counts of the training split of the run that trained the model (none for a
    bare model: the baselines then take this split's)."""
    if run_dir is None or not RunDir(run_dir).run_json.exists():
        return {}
    data = rundir.read_json(RunDir(run_dir).run_json).get("data") or {}
    counts = (data.get("label_distribution") or {}).get("train") or {}
    return {"counts": counts, "rows": data.get("train_rows")}


def _run_precision(run_dir: Path | None) -> str:
    """A run's own precision (its metrics.json came from it); fp32 for a bare model."""
    path = RunDir(run_dir).run_json if run_dir else None
    if path is None or not path.exists():
        return "no"
    used = (rundir.read_json(path).get("precision") or {}).get("used")
    return used if used == "bf16" or (used == "fp16" and gpu_available()) else "no"


def _extra_metrics(modules: list[Any], p: evaluation.Predictions) -> dict[str, Any]:
    """Any other evaluate modules the user asked for (loaded up front)."""
    out: dict[str, Any] = {}
    for module in modules:
        out.update(module.compute(predictions=p.predictions, references=p.references))
    return out


def _task_of(config: Any, run_dir: Path | None) -> str:
    if run_dir and RunDir(run_dir).run_json.exists():
        return str(rundir.read_json(RunDir(run_dir).run_json)["task"])
    for arch in config.architectures or []:
        head = head_of(arch)
        if head and head[0] in tasks.NAMES:
            return head[0]
    raise UsageError(
        "Cannot tell which task this checkpoint was trained for.",
        f"Pass --task ({', '.join(tasks.NAMES)}).",
    )


# How the run prepared and generated (the model expects the same), unless given again.
TASK_SETTINGS = (
    "source_lang",
    "target_lang",
    "source_prefix",
    "max_target_length",
    "num_beams",
    "max_new_tokens",
    "doc_stride",
    "max_answer_length",
    "train_on_prompt",
    "eval_metrics",
    "slices",
)


def _data_config(
    model_path: str, limit: int | None, task: str, options: dict[str, Any], run_dir: Path | None
) -> FinetuneConfig:
    columns: dict[str, Any] = {}
    if run_dir and RunDir(run_dir).run_json.exists():
        run = rundir.read_json(RunDir(run_dir).run_json)
        saved = run.get("columns", {})
        columns = {
            "text_column": saved.get("text"),
            "text_pair_column": saved.get("text_pair"),
            "label_column": saved.get("label"),
        }
        trained = run.get("config") or {}
        columns |= {k: trained[k] for k in TASK_SETTINGS if trained.get(k) is not None}
        if trained.get("quantize") not in (None, "none") and base_of(model_path):
            # the adapter was trained and measured on a quantized base: measured so again
            columns |= {"quantize": trained["quantize"], "peft": "lora"}
    given = ("text_column", "text_pair_column", "label_column", "source_column", "target_column")
    for key in (*given, *TASK_SETTINGS):
        if options.get(key) is not None:
            columns[key] = options[key]
    cfg = FinetuneConfig(
        model=model_path,
        dataset=options["dataset"],
        dataset_config=options.get("dataset_config"),
        task=task,
        max_length=options["max_length"],
        eval_batch_size=options["batch_size"],
        **columns,
    )
    return with_max_length(cfg, limit)


def _load_split(
    cfg: FinetuneConfig, split: str, hub: HubSettings | None
) -> tuple[Any, dict[str, Any]]:
    raw, source = data.load_raw(cfg, hub)
    if split not in raw:
        raise UsageError(f"The dataset has no split {split!r}.", f"Splits: {', '.join(raw)}.")
    if len(raw[split]) == 0:
        raise UsageError(f"The {split} split is empty.")
    return raw[split], source


def _prepare_split(
    ds: Any,
    cfg: FinetuneConfig,
    task: str,
    labels: list[str] | None,
    tokenizer: Any,
    multi: bool = False,
) -> tuple[Any, dict[str, list[str]]]:
    """(the split's evaluation features, each row's slice of every factor)."""
    spec = tasks.get(task)
    if multi:
        ds, cfg = _fold_label_columns(ds, cfg, labels or [])
    cols = spec.columns(list(ds.column_names), cfg)
    spec.check_rows(ds, "evaluation", cols)
    rows, groups = ds, slicing.group_values(ds, cfg.slice_columns, cols.text)
    if cols.label is not None and labels is not None and multi:
        ds = data.encode_multi_hot(ds, cols.label, labels, label_set="model's")
    elif cols.label is not None and labels is not None:
        ds = data.encode_labels(ds, cols.label, labels, spec.per_token, label_set="model's")
    features = spec.tokenize_eval(ds, tokenizer, cfg, cols)[0]
    features = slicing.number_rows(spec, rows, features, cols)
    slicing.refuse_untraceable(spec, features, cfg.slice_columns)
    return features, (groups if "row" in features.column_names else {})


def _fold_label_columns(
    ds: Any, cfg: FinetuneConfig, labels: list[str]
) -> tuple[Any, FinetuneConfig]:
    """A multi-label model trained on 0/1 columns is evaluated on the same columns (or on
    those named with ``--label-column a,b,c``), folded into label lists as in training."""
    if cfg.label_column and "," in cfg.label_column:
        columns = data.binary_columns(ds, cfg.label_column, ())
    elif cfg.label_column == data.FOLDED and data.FOLDED not in ds.column_names:
        absent = [name for name in labels if name not in ds.column_names]
        if absent:
            raise UsageError(
                "The model's labels came from 0/1 columns; this split lacks "
                f"{', '.join(map(repr, absent[:10]))}.",
                "Evaluate on data with a 0/1 column per label, or name them with "
                "--label-column a,b,c.",
            )
        columns = labels
    else:
        return ds, cfg
    return data.fold_binary_columns(ds, columns), replace(cfg, label_column=data.FOLDED)


def _loader(cfg: FinetuneConfig, prepared: Any, task: str, tokenizer: Any) -> Any:
    from torch.utils.data import DataLoader

    from hubtool.training.batching import LengthGroupedBatchSampler
    from hubtool.training.slicing import WithRows

    spec = tasks.get(task)
    prepared, collate = spec.evaluation_set(prepared, spec.collator(tokenizer, cfg), cfg.seed)
    sampler = LengthGroupedBatchSampler(
        prepared["length"], cfg.eval_batch_size or 32, cfg.seed, shuffle=False
    )
    return DataLoader(prepared, batch_sampler=sampler, collate_fn=WithRows(collate))


def _metrics_name(run_dir: Path, document: dict[str, Any]) -> str:
    run = RunDir(run_dir).run_json
    if run.exists():
        saved = rundir.read_json(run).get("dataset", {})
        same = (saved.get("id") or saved.get("path")) in (
            document["dataset"]["id"],
            document["dataset"]["path"],
        )
        if same and saved.get("split") == document["dataset"]["split"]:
            return "metrics.json"
    return f"metrics-{document['dataset']['split']}.json"
