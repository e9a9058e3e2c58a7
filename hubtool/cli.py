"""hubtool's command line: parse options, call the library, print the result.

stdout carries data (URLs, tokens, tables); stderr carries talk. ``main`` is the one place
where errors become text and exit codes (see ``hubtool.errors``).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from hubtool import __version__
from hubtool.errors import HubtoolError, LocalHubError, UsageError, render_error

DEFAULT_HUB_DIR = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / (
    "hubtool/hub"
)

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="HUBTOOL_HUB_DIR",
    default=DEFAULT_HUB_DIR,
    show_default=True,
    show_envvar=True,
    help="Where the local Hub keeps its git repositories, LFS objects and database.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubtool")
@click.option(
    "--debug", is_flag=True, envvar="HUBTOOL_DEBUG", help="Show tracebacks and debug logs."
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """hubtool: find a checkpoint, fine-tune it, document it, publish it on the Hugging Face Hub."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")


@cli.group()
def hub() -> None:
    """The local Hub: a Hugging Face Hub-compatible server for offline work and CI.

    Point any Hugging Face client at it with HF_ENDPOINT=<url it prints>.
    """


@hub.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind; 0 picks a free one.",
)
@click.option(
    "--url-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the endpoint URL to this file (for scripts).",
)
@data_dir_option
def hub_serve(host: str, port: int, url_file: Path | None, data_dir: Path) -> None:
    """Serve the local Hub until interrupted (Ctrl-C or SIGTERM)."""
    from hubtool.hub.server import make_server, serve_forever

    server = _open(lambda: make_server(data_dir, host, port), data_dir)
    click.echo(server.url)
    if url_file is not None:
        _write_atomic(url_file, server.url + "\n")
    click.echo(
        f"Local Hub at {server.url} (data in {data_dir}); "
        f"use it with: export HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1",
        err=True,
    )
    sys.stdout.flush()
    serve_forever(server)
    click.echo("Local Hub stopped.", err=True)


@hub.group("user")
def hub_user() -> None:
    """Manage the local Hub's users."""


@hub_user.command("add")
@click.argument("name")
@click.option("--fullname", help="Display name (default: NAME).")
@click.option("--email", help="E-mail address shown by whoami.")
@data_dir_option
def hub_user_add(name: str, fullname: str | None, email: str | None, data_dir: Path) -> None:
    """Add a user named NAME (its namespace is NAME)."""
    _service(data_dir).add_user(name, fullname, email)
    click.echo(f"Added user {name}.", err=True)


@hub.group("org")
def hub_org() -> None:
    """Manage the local Hub's organizations."""


@hub_org.command("add")
@click.argument("name")
@click.option("--member", "members", multiple=True, help="A user who may write to NAME/…")
@data_dir_option
def hub_org_add(name: str, members: tuple[str, ...], data_dir: Path) -> None:
    """Add an organization NAME, optionally with members."""
    svc = _service(data_dir)
    svc.add_user(name, is_org=True)
    for member in members:
        svc.add_member(name, member)
    click.echo(f"Added organization {name}.", err=True)


@hub.group("token")
def hub_token() -> None:
    """Manage access tokens."""


@hub_token.command("create")
@click.argument("user")
@click.option("--write", is_flag=True, help="Allow writes (default: read-only).")
@click.option("--name", "label", help="The token's display name.")
@data_dir_option
def hub_token_create(user: str, write: bool, label: str | None, data_dir: Path) -> None:
    """Create a token for USER and print it once (only its hash is stored)."""
    token = _service(data_dir).create_token(user, write, label)
    click.echo(token)
    click.echo("This token is shown once; keep it secret (e.g. in HF_TOKEN).", err=True)


@hub.command("import-catalog")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@data_dir_option
def hub_import_catalog(file: Path, data_dir: Path) -> None:
    """Load Hub listing rows (JSONL, JSONL.gz or CSV) as metadata-only model repos."""
    from hubtool.hub.catalog import import_catalog

    try:
        imported, skipped = import_catalog(_service(data_dir), file)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise UsageError(
            f"Cannot import {file}: {exc}",
            "Give a JSON-lines file (optionally .gz) or a CSV export.",
        ) from None
    click.echo(f"Imported {imported} rows from {file} ({skipped} skipped).", err=True)


def _settings():
    from hubtool.hubclient import HubSettings

    return HubSettings.from_env()


def _count(value: str | None) -> int | None:
    """'110M' -> 110_000_000."""
    if value is None:
        return None
    from hubtool.output import parse_count

    count = parse_count(value)
    if count is None:
        raise UsageError(f"Invalid count {value!r}.", "Use a number like 500000, 110M or 1.5B.")
    return count


@cli.command("search")
@click.argument("text", required=False)
@click.option("--task", required=True, help="Hub pipeline tag, e.g. fill-mask.")
@click.option("--lang", help="Language: fr, fra, french or français.")
@click.option("--license", "license_", help="License id, e.g. apache-2.0.")
@click.option("--library", help="Library, e.g. transformers.")
@click.option("--author", help="Namespace (user or organization).")
@click.option("--max-params", help="At most this many parameters (e.g. 150M).")
@click.option("--min-downloads", help="At least this many downloads (e.g. 1000 or 10k).")
@click.option(
    "--sort",
    type=click.Choice(["relevance", "downloads", "likes", "recent"]),
    default="relevance",
    show_default=True,
    help="Order of the results.",
)
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option(
    "--include-unfit",
    is_flag=True,
    help="Also list checkpoints whose architecture cannot serve the task.",
)
@click.option("--refresh", is_flag=True, help="Bypass the 10-minute result cache.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (fields in README).")
def search_command(
    text,
    task,
    lang,
    license_,
    library,
    author,
    max_params,
    min_downloads,
    sort,
    limit,
    include_unfit,
    refresh,
    as_json,
) -> None:
    """Find checkpoints that can serve TASK in a language, ranked by fit."""
    from hubtool.languages import resolve_language
    from hubtool.output import spinner
    from hubtool.search import SearchQuery, search
    from hubtool.tasks import resolve_task

    query = SearchQuery(
        task=resolve_task(task),
        language=resolve_language(lang) if lang else None,
        text=text,
        license=license_,
        library=library,
        author=author,
        max_params=_count(max_params),
        min_downloads=_count(min_downloads),
        sort=sort,
        limit=limit,
        include_unfit=include_unfit,
    )
    with spinner("Searching the Hub…", enabled=not as_json):
        results = search(_settings(), query, refresh=refresh)
    if as_json:
        import json

        click.echo(json.dumps([r.as_json() for r in results], indent=2, ensure_ascii=False))
    else:
        from hubtool.render import search_table

        click.echo(search_table(results) if results else "No matching checkpoints.")


@cli.command("info")
@click.argument("model")
@click.option("--revision", help="A branch, tag or commit (default: main).")
@click.option("--json", "as_json", is_flag=True, help="Print the view as JSON.")
def info_command(model: str, revision: str | None, as_json: bool) -> None:
    """Show one model in depth: card metadata, files, parameters, what tasks it can serve."""
    from hubtool.modelinfo import model_view

    view = model_view(_settings(), model, revision)
    if as_json:
        import json

        click.echo(json.dumps(view.as_json(), indent=2, ensure_ascii=False))
    else:
        from hubtool.render import info_text

        click.echo(info_text(view))


# name: (click type, help). Defaults come from FinetuneConfig; a config file may set any.
FINETUNE_OPTIONS: dict[str, tuple[Any, str]] = {
    "model": (str, "Checkpoint: Hub id or local folder."),
    "dataset": (str, "Hub dataset id, or a csv/tsv/json/jsonl/parquet/txt file or folder."),
    "dataset_config": (str, "Dataset configuration name."),
    "dataset_revision": (str, "Dataset branch, tag or commit."),
    "task": (
        click.Choice(["auto", "text-classification", "fill-mask", "token-classification"]),
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
    "mixed_precision": (click.Choice(["no", "bf16", "fp16"]), "Mixed precision."),
    "seed": (int, "Random seed (data order, masking, initialisation)."),
    "eval_every": (str, "'epoch' or a number of steps."),
    "save_every": (str, "Checkpoint every 'epoch' or N steps."),
    "keep_checkpoints": (int, "Checkpoints kept (the last ones)."),
    "early_stopping": (int, "Stop after N evaluations without improvement."),
    "metric_for_best": (
        str,
        "Metric that picks the best model (default: accuracy, f1 or perplexity).",
    ),
    "report_to": (click.Choice(["tensorboard"]), "Also log to this tracker."),
    "output_dir": (str, "The run directory (default: runs/MODEL-DATASET)."),
    "mlm_probability": (float, "fill-mask: share of tokens masked."),
    "whole_word_mask": (bool, "fill-mask: mask whole words."),
    "label_all_subwords": (bool, "token-classification: label every sub-word."),
    "group_by_length": (bool, "Batch examples of similar lengths (less padding)."),
}


def finetune_options(fn):
    """Every FinetuneConfig field as an option (None when not given, so files can set it)."""
    from dataclasses import MISSING, fields

    from hubtool.config import FinetuneConfig

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


@cli.command("finetune")
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
    from hubtool.card import card_section
    from hubtool.config import read_config_file, read_raw_config, resolve_config
    from hubtool.pipeline import push_settings, run_finetune

    push_flags = {k: flags.pop(k) for k in ("push", "repo_id", "strategy", "private")}
    raw = read_raw_config(config_file) if config_file else {}
    section: dict[str, Any] = raw["push"] if isinstance(raw.get("push"), dict) else {}
    push = push_settings(section, push_flags)
    cfg = resolve_config(read_config_file(config_file) if config_file else {}, flags)
    run_dir = run_finetune(
        cfg,
        [card_section(config_file)],
        push,
        overwrite=overwrite,
        resume=resume,
        progress=not no_progress,
        echo=lambda line: click.echo(line, err=True),
    )
    if run_dir is not None:  # the main process reports; the others stay quiet
        click.echo(str(run_dir))


CARD_FLAGS = {
    "repo_id": "The Hub repo the model will live in (NS/NAME): names the model and the snippet.",
    "intended_uses": "What the model is for.",
    "out_of_scope": "What the model must not be used for.",
    "limitations": "Known limitations.",
    "contact": "How to reach the authors.",
    "license": "License id, when not the base model's.",
    "bias_probe": "YAML file with a gender probe for another language (see hubtool/probes).",
}


def card_options(fn):
    for name, text in reversed(CARD_FLAGS.items()):
        fn = click.option(f"--{name.replace('_', '-')}", name, help=text)(fn)
    fn = click.option("--author", "authors", multiple=True, help="An author (repeatable).")(fn)
    fn = click.option("--language", multiple=True, help="A language of the model (repeatable).")(fn)
    return fn


@cli.command("card")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@card_options
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="hubtool.yaml whose card: section says what only you can say.",
)
@click.option(
    "--template",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Your own Jinja body template (same context; see templates/README.md).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the card [default: RUN_DIR/model/README.md].",
)
@click.option("--check", "check_only", is_flag=True, help="Check the card, write nothing.")
@click.option("--strict", is_flag=True, help="Missing uses, limitations, authors or license fail.")
def card_command(run_dir, config_file, template, output, check_only, strict, **flags) -> None:
    """Write RUN_DIR's model card from what the run measured; check it as the Hub would."""
    from hubtool.card import card_section, card_stage

    layers = [card_section(config_file), flags]
    outcome = card_stage(
        run_dir, layers, _settings().endpoint, template, output, check_only, strict
    )
    _report_card(outcome)
    if outcome.written:
        click.echo(str(outcome.written))
    else:
        click.echo("The card passes every check.", err=True)


def _report_card(outcome: Any) -> None:
    from hubtool.errors import CheckFailed

    for line in outcome.notes + outcome.report.warnings:
        click.echo(f"Warning: {line}", err=True)
    if outcome.report.ok:
        return
    problems = "".join(f"\n  - {p}" for p in outcome.report.problems)
    raise CheckFailed(
        f"The card fails {len(outcome.report.problems)} check(s):{problems}",
        "Fix these (card: section of hubtool.yaml or flags), then run `hubtool card RUN_DIR`.",
    )


def push_options(fn):
    for option in reversed(
        [
            click.option("--private", is_flag=True, help="Create the repo private."),
            click.option("--revision", default="main", show_default=True, help="Branch to write."),
            click.option("--create-pr", is_flag=True, help="Open a pull request instead."),
            click.option("--tag", help="Tag the pushed commit (e.g. v1.2.0)."),
            click.option("--commit-message", help="Commit message."),
        ]
    ):
        fn = option(fn)
    return fn


@cli.command("push")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--repo-id", required=True, help="NAMESPACE/NAME on the Hub (HF_ENDPOINT).")
@push_options
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def push_command(run_dir, repo_id, dry_run, **options) -> None:
    """Push RUN_DIR's model, card and metrics to a Hub repo in one commit."""
    from hubtool.push import PushOptions, push_run
    from hubtool.render import push_plan_text

    opts = PushOptions(repo_id=repo_id, **options)
    outcome = push_run(run_dir, opts, dry_run)
    if dry_run:
        click.echo(push_plan_text(outcome))
        return
    _report_push(outcome)


def _report_push(result: Any) -> None:
    if result.created_repo:
        click.echo(f"Created {result.repo_url}", err=True)
    if result.committed:
        click.echo(f"Committed {result.sent} file(s): {str(result.commit)[:12]}", err=True)
    else:
        click.echo("Nothing changed: no commit.", err=True)
    if result.tag:
        click.echo(f"Tagged {result.tag}", err=True)
    click.echo(result.pr_url or result.repo_url)


@cli.command("publish")
@click.argument("run_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="hubtool.yaml: without RUN_DIR, the whole pipeline runs from it first.",
)
@click.option("--repo-id", help="NAMESPACE/NAME [default: push.repo_id of the config].")
@click.option("--tag", required=True, help="The release tag (e.g. v1.2.0, $GITHUB_REF_NAME).")
@click.option(
    "--require",
    "requirements",
    multiple=True,
    help="A metric requirement, e.g. 'accuracy>=0.90' (repeatable; adds to publish.require).",
)
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def publish_command(run_dir, config_file, repo_id, tag, requirements, private, no_progress):
    """Release a run: check its metrics against requirements, compare with the last release,
    push and tag. Exit 8 when a requirement fails."""
    from hubtool.publish import parse_requirement, publish_release
    from hubtool.push import PushOptions

    raw = _raw_config(config_file)
    section: dict[str, Any] = raw["publish"] if isinstance(raw.get("publish"), dict) else {}
    push_section: dict[str, Any] = raw["push"] if isinstance(raw.get("push"), dict) else {}
    repo_id = repo_id or section.get("repo_id") or push_section.get("repo_id")
    if not repo_id:
        raise UsageError("No repo id.", "Pass --repo-id NS/NAME or set push.repo_id.")
    wanted = [*(section.get("require") or []), *requirements]
    reqs = [parse_requirement(r) for r in wanted]
    opts = PushOptions(repo_id, private=private, tag=tag)
    if run_dir is None:
        run_dir = _train_for_release(config_file, repo_id, no_progress)
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    result = publish_release(run_dir, opts, reqs, echo)
    _report_push(result)


def _raw_config(config_file: Path | None) -> dict[str, Any]:
    from hubtool.config import read_raw_config

    return read_raw_config(config_file) if config_file else {}


def _train_for_release(config_file: Path | None, repo_id: str, no_progress: bool) -> Path:
    from hubtool.card import card_section
    from hubtool.config import read_config_file, resolve_config
    from hubtool.pipeline import run_finetune

    if config_file is None:
        raise UsageError("Give a RUN_DIR to release, or --config to train one first.")
    cfg = resolve_config(read_config_file(config_file), {})
    run_dir = run_finetune(
        cfg,
        [card_section(config_file), {"repo_id": repo_id}],
        None,
        progress=not no_progress,
        echo=lambda line: click.echo(line, err=True),
    )
    assert run_dir is not None  # publish runs as one process
    return run_dir


@cli.group("ci")
def ci_group() -> None:
    """Continuous integration: workflows that publish your model."""


@ci_group.command("init")
@click.option("--repo-id", required=True, help="The Hub repo releases go to (NS/NAME).")
@click.option("--model", default="sentence-transformers/all-MiniLM-L6-v2", show_default=True)
@click.option("--dataset", default="stanfordnlp/sst2", show_default=True)
@click.option(
    "--task",
    type=click.Choice(["text-classification", "token-classification", "fill-mask"]),
    default="text-classification",
    show_default=True,
)
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The repository to write into.",
)
@click.option("--force", is_flag=True, help="Replace an existing workflow or hubtool.yaml.")
def ci_init_command(repo_id, model, dataset, task, root, force) -> None:
    """Write .github/workflows/publish-model.yml and a starter hubtool.yaml."""
    from hubtool.ciinit import init

    for path in init(root, repo_id, model, dataset, task, force):
        click.echo(str(path))
    click.echo(
        "Next: add an HF_TOKEN secret (a write token) to the GitHub repository, commit, "
        "then push a tag: git tag v0.1.0 && git push --tags",
        err=True,
    )


@cli.command("evaluate")
@click.argument("model")
@click.option("--dataset", required=True, help="Hub dataset id or local file/folder.")
@click.option("--dataset-config")
@click.option("--split", default="validation", show_default=True)
@click.option(
    "--task",
    type=click.Choice(["auto", "text-classification", "fill-mask", "token-classification"]),
    default="auto",
)
@click.option("--text-column")
@click.option("--text-pair-column")
@click.option("--label-column")
@click.option("--max-length", type=int, help="Default: 128, or the model's limit when lower.")
@click.option("--batch-size", type=int, default=32, show_default=True)
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
    import json

    from hubtool.evaluate_stage import evaluate_model

    document, target = evaluate_model(model, options, bootstrap, list(extra_metrics), output)
    if target is None:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(str(target))


@cli.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".hubtool-demo"),
    show_default=True,
    help="Where the demo keeps its local Hub and files.",
)
def demo_command(workdir: Path) -> None:
    """Start a local Hub, publish a tiny model with the real clients, list, load and clone it."""
    from hubtool.demo import run_demo

    run_demo(workdir, echo=lambda msg: click.echo(msg, err=True))


def _service(data_dir: Path):
    from hubtool.hub.service import HubService

    return _open(lambda: HubService(data_dir), data_dir)


def _open(make, data_dir: Path):
    try:
        return make()
    except OSError as exc:
        raise LocalHubError(
            f"Cannot use the local Hub at {data_dir}: {exc.strerror or exc}.",
            "Check the path and its permissions, or pick another --data-dir "
            "(or another --port if the address is taken).",
        ) from None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    debug = "--debug" in (argv or sys.argv[1:]) or bool(os.environ.get("HUBTOOL_DEBUG"))
    try:
        cli.main(args=argv, prog_name="hubtool", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except HubtoolError as exc:
        if debug:
            traceback.print_exc()
        click.echo(render_error(exc), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(0)
