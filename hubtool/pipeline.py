"""The whole journey of ``hubtool finetune``: train (pushing in the background when asked),
write the card, push the result. Each stage is its own module; this one only sequences them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubtool.core.hubclient import HubSettings
from hubtool.core.launch import Launch
from hubtool.core.output import note, warn
from hubtool.errors import ConfigError, HubConnectionError, HubtoolError, UsageError
from hubtool.training.config import FinetuneConfig


@dataclass(frozen=True)
class PushSettings:
    repo_id: str
    private: bool = False
    strategy: str = "end"
    revision: str = "main"


def push_settings(section: dict[str, Any], flags: dict[str, Any]) -> PushSettings | None:
    """From the ``push:`` section of hubtool.yaml (a section pushes unless ``enabled: false``)
    and flags (``--push`` and the others win); None: no push."""
    from hubtool.publish.background import STRATEGIES

    merged = {str(k).replace("-", "_"): v for k, v in section.items()}
    enabled_value = merged.pop("enabled", bool(section))
    if not isinstance(enabled_value, bool):
        raise ConfigError(f"push.enabled must be true or false, not {enabled_value!r:.40}.")
    enabled = bool(flags.get("push")) or enabled_value
    merged.update({k: v for k, v in flags.items() if k != "push" and v not in (None, False)})
    unknown = set(merged) - {"repo_id", "private", "strategy", "revision"}
    if unknown:
        raise ConfigError(f"Unknown push setting {sorted(unknown)[0]!r}.")
    if not enabled:
        return None
    if not merged.get("repo_id"):
        raise UsageError("--push needs a repo id.", "Pass --hub-model-id NS/NAME.")
    if merged.get("strategy", "end") not in STRATEGIES:
        raise ConfigError(f"push strategy must be one of {', '.join(STRATEGIES)}.")
    for key, kind in (("repo_id", str), ("private", bool), ("strategy", str), ("revision", str)):
        if key in merged and not isinstance(merged[key], kind):
            raise ConfigError(
                f"push.{key} must be {'true or false' if kind is bool else 'text'}, "
                f"not {merged[key]!r:.40}."
            )
    return PushSettings(**merged)


def preflight(
    layers: list[dict[str, Any] | None], push: PushSettings | None, hub: HubSettings
) -> None:
    """Everything about the card and the push that can be checked before the first step, so
    that a bad repo id, section or token does not fail after the training."""
    from hubtool.cards.stage import check_settings

    extra = [{"repo_id": push.repo_id}] if push else []
    check_settings([*layers, *extra])
    if push is not None:
        check_push_target(push, hub)


def check_push_target(push: PushSettings, settings: HubSettings) -> None:
    """The repo id and branch are well formed, and the token may write to the namespace."""
    from hubtool.core.hubclient import has_token, hub_errors, make_api, no_token
    from hubtool.publish.push import PushOptions, check_options

    check_options(PushOptions(push.repo_id, private=push.private, revision=push.revision))
    if not has_token(settings):
        raise no_token(f"--push to {push.repo_id} needs a write token for {settings.endpoint}")
    try:
        with hub_errors(settings, f"Checking the token for {push.repo_id}"):
            who = make_api(settings).whoami()
    except HubConnectionError as exc:  # transient: the run can still be pushed at its end
        warn(f"{exc.message} Training anyway; the push at the end will try again.")
        return
    _check_write_access(who, push.repo_id, settings.endpoint)


def _check_write_access(who: dict[str, Any], repo_id: str, endpoint: str) -> None:
    from hubtool.errors import HubAuthError

    role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
    namespace = repo_id.split("/")[0]
    names = {who.get("name"), *(o.get("name") for o in who.get("orgs") or [])}
    if role == "read":
        raise HubAuthError(
            f"The token for {who.get('name')} on {endpoint} is read-only: it cannot push "
            f"{repo_id}.",
            "Use a write token (HF_TOKEN or `hf auth login`).",
        )
    if role != "fineGrained" and namespace not in names:
        raise HubAuthError(
            f"The token for {who.get('name')} cannot write to the namespace {namespace!r} "
            f"(it can write to: {', '.join(sorted(n for n in names if n))}).",
            "Push to your own namespace or an organization you belong to (--hub-model-id).",
        )


def run_finetune(
    cfg: FinetuneConfig,
    card_layers: list[dict[str, Any] | None],
    push: PushSettings | None,
    hub: HubSettings,
    launch: Launch | None = None,
    overwrite: bool = False,
    resume: str | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = note,
) -> Path | None:
    """Train, card, push with the Hub ``hub``; ``launch``: this process's place in a
    multi-process job (one process when None). Returns the run directory (None on non-main
    processes)."""
    from hubtool.training.loop import finetune

    launch = launch or Launch()
    preflight(card_layers, push, hub)
    if resume and resume.startswith("hub:"):
        from hubtool.core.hubclient import check_repo_id

        check_repo_id(resume[4:], "--resume hub:NS/NAME")
        resume = (
            fetch_hub_checkpoint(resume[4:], cfg.run_dir, overwrite, hub)
            if launch.is_main
            else "latest"
        )
    background = push is not None and push.strategy != "end" and launch.is_main
    pusher = _pusher(push, hub) if push is not None and background else None
    hook = None
    if pusher is not None and push is not None:
        from hubtool.publish.background import on_save_hook

        hook = on_save_hook(pusher, push.strategy)
    try:
        run_dir = finetune(cfg, overwrite, resume, progress, on_save=hook, hub=hub, launch=launch)
    finally:
        if pusher is not None:
            pusher.close()
            for error in pusher.errors:
                warn(f"a background push failed (the final push will retry): {error}")
    if run_dir is None:
        return None
    run_dir = run_dir.resolve()  # printed in hints: it must work from any folder
    _card(run_dir, card_layers, push, hub)
    if push is not None:
        final_push(run_dir, push, echo, hub)
    return run_dir


def _pusher(push: PushSettings, hub: HubSettings) -> Any:
    from hubtool.core.hubclient import make_api
    from hubtool.publish.background import BackgroundPusher

    api = make_api(hub)
    return BackgroundPusher(api, push.repo_id, push.revision, push.private)


def _card(
    run_dir: Path,
    layers: list[dict[str, Any] | None],
    push: PushSettings | None,
    hub: HubSettings,
) -> Any:
    from hubtool.cards.stage import card_stage

    extra = [{"repo_id": push.repo_id}] if push else []
    outcome = card_stage(run_dir, [*layers, *extra], hub)
    for line in outcome.notes + outcome.report.warnings:
        warn(line)
    if not outcome.report.ok:
        warn(
            "the card was not written:"
            + outcome.report.listed()
            + f"\nHint: fix these, then run `hubtool card {run_dir}`."
        )
    return outcome


def final_push(
    run_dir: Path, push: PushSettings, echo: Callable[[str], None], hub: HubSettings
) -> Any:
    """The last push; when it fails the run stays complete and `hubtool push` finishes it."""
    from hubtool.publish.push import PushOptions, push_run

    opts = PushOptions(push.repo_id, private=push.private, revision=push.revision)
    try:
        result = push_run(run_dir, opts, hub)
    except HubtoolError as exc:
        exc.hint = (
            f"The run is complete in {run_dir}; nothing needs retraining. Finish with "
            f"`hubtool push {run_dir} --repo-id {push.repo_id}`. " + (exc.hint or "")
        ).strip()
        raise
    echo(
        f"Pushed to {result.repo_url}" + (f" ({str(result.commit)[:12]})" if result.commit else "")
    )
    return result


def fetch_hub_checkpoint(repo_id: str, run_dir: Path, overwrite: bool, hub: HubSettings) -> str:
    """Download the ``hubtool-checkpoint`` branch into ``run_dir``; returns the resume value."""
    from hubtool.core import rundir
    from hubtool.core.hubclient import hub_errors, make_api
    from hubtool.publish.background import CHECKPOINT_BRANCH

    if rundir.holds_run(run_dir) and not overwrite:
        raise UsageError(
            f"{run_dir} already holds a run; resuming from the Hub would replace it.",
            "Pass --overwrite, or another --output-dir.",
        )
    with tempfile.TemporaryDirectory(prefix="hubtool-resume-") as tmp:
        with hub_errors(hub, f"Fetching the training state of {repo_id}"):
            make_api(hub).snapshot_download(repo_id, revision=CHECKPOINT_BRANCH, local_dir=tmp)
        if not any(Path(tmp, "checkpoints").glob("step-*/hubtool_state.json")):
            raise UsageError(
                f"The {CHECKPOINT_BRANCH} branch of {repo_id} holds no hubtool checkpoint.",
                "Train with --push --push-strategy checkpoint to write one.",
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("checkpoints", "model", "train_log.jsonl", "metrics.json"):
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            if Path(tmp, name).exists():
                shutil.move(str(Path(tmp, name)), str(target))
    return "latest"
