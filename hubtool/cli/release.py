"""`hubtool card`, `hubtool push`, `hubtool publish` and `hubtool ci init`: documenting and
publishing a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hubtool import tasks
from hubtool.cli.options import settings
from hubtool.core.output import out
from hubtool.errors import UsageError

CARD_FLAGS = {
    "repo_id": "The Hub repo the model will live in (NS/NAME): names the model and the snippet.",
    "intended_uses": "What the model is for.",
    "out_of_scope": "What the model must not be used for.",
    "limitations": "Known limitations.",
    "contact": "How to reach the authors.",
    "license": "License id, when not the base model's.",
    "bias_probe": "YAML file with a gender probe for another language (see hubtool/cards/probes).",
}


def card_options(fn):
    for name, text in reversed(CARD_FLAGS.items()):
        fn = click.option(f"--{name.replace('_', '-')}", name, help=text)(fn)
    fn = click.option("--author", "authors", multiple=True, help="An author (repeatable).")(fn)
    fn = click.option("--language", multiple=True, help="A language of the model (repeatable).")(fn)
    return fn


@click.command("card")
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
    from hubtool.cards.stage import card_section, card_stage
    from hubtool.core.configfile import ConfigFile

    layers = [card_section(ConfigFile.read(config_file)), flags]
    outcome = card_stage(run_dir, layers, settings(), template, output, check_only, strict)
    _report_card(outcome)
    if outcome.written:
        out.result(str(outcome.written))
    else:
        out.note("The card passes every check.")


def _report_card(outcome: Any) -> None:
    from hubtool.core.output import warn
    from hubtool.errors import CheckFailed

    for line in outcome.notes + outcome.report.warnings:
        warn(line)
    if outcome.report.ok:
        return
    problems = outcome.report.listed()
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


@click.command("push")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--repo-id", required=True, help="NAMESPACE/NAME on the Hub (HF_ENDPOINT).")
@push_options
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
def push_command(run_dir, repo_id, dry_run, **options) -> None:
    """Push RUN_DIR's model, card and metrics to a Hub repo in one commit."""
    from hubtool.cli.render import push_plan_text
    from hubtool.publish.push import PushOptions, push_run

    opts = PushOptions(repo_id=repo_id, **options)
    outcome = push_run(run_dir, opts, settings(), dry_run)
    if dry_run:
        out.result(push_plan_text(outcome))
        return
    _report_push(outcome)


def _report_push(result: Any) -> None:
    if result.created_repo:
        out.note(f"Created {result.repo_url}")
    if result.committed:
        out.note(f"Committed {result.sent} file(s): {str(result.commit)[:12]}")
    else:
        out.note("Nothing changed: no commit.")
    if result.tag:
        out.note(f"Tagged {result.tag}")
    out.result(result.pr_url or result.repo_url)


@click.command("publish")
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
@click.option("--overwrite", is_flag=True, help="With --config: replace the run already there.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def publish_command(
    run_dir, config_file, repo_id, tag, requirements, private, overwrite, no_progress
):
    """Release a run: check its metrics against requirements, compare with the last release,
    push and tag. Exit 8 when a requirement fails."""
    from hubtool.core.configfile import ConfigFile
    from hubtool.publish.push import PushOptions
    from hubtool.publish.release import parse_requirement, publish_release

    config = ConfigFile.read(config_file)  # read once
    section = config.section("publish")
    repo_id = repo_id or section.get("repo_id") or config.section("push").get("repo_id")
    if not repo_id:
        raise UsageError("No repo id.", "Pass --repo-id NS/NAME or set push.repo_id.")
    wanted = [*(section.get("require") or []), *requirements]
    reqs = [parse_requirement(r) for r in wanted]
    opts = PushOptions(repo_id, private=private, tag=tag)
    if run_dir is None:
        run_dir = _train_for_release(config, repo_id, overwrite, no_progress)
    echo = out.note
    result = publish_release(run_dir, opts, reqs, echo, settings())
    _report_push(result)


def _train_for_release(config: Any, repo_id: str, overwrite: bool, no_progress: bool) -> Path:
    from hubtool.cards.stage import card_section
    from hubtool.pipeline import run_finetune
    from hubtool.training.config import finetune_values, resolve_config

    if config.path is None:
        raise UsageError("Give a RUN_DIR to release, or --config to train one first.")
    cfg = resolve_config(finetune_values(config), {})
    run_dir = run_finetune(
        cfg,
        [card_section(config), {"repo_id": repo_id}],
        None,
        overwrite=overwrite,
        progress=not no_progress,
        echo=out.note,
        hub=settings(),
    )
    assert run_dir is not None  # publish runs as one process
    return run_dir


@click.group("ci")
def ci_group() -> None:
    """Continuous integration: workflows that publish your model."""


@ci_group.command("init")
@click.option("--repo-id", required=True, help="The Hub repo releases go to (NS/NAME).")
@click.option("--model", default="sentence-transformers/all-MiniLM-L6-v2", show_default=True)
@click.option("--dataset", default="stanfordnlp/sst2", show_default=True)
@click.option(
    "--task",
    type=click.Choice(list(tasks.NAMES)),
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
@click.option("--source-lang", help="translation: the source language code.")
@click.option("--target-lang", help="translation: the target language code.")
@click.option(
    "--multi-label", is_flag=True, help="text-classification with several labels per example."
)
def ci_init_command(repo_id, model, dataset, task, root, force, **options) -> None:
    """Write .github/workflows/publish-model.yml and a starter hubtool.yaml."""
    from hubtool.publish.ci import init

    for path in init(root, repo_id, model, dataset, task, force, options):
        out.result(str(path))
    out.note(
        "Next: add an HF_TOKEN secret (a write token) to the GitHub repository, commit, "
        "then push a tag: git tag v0.1.0 && git push --tags"
    )
