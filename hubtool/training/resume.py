"""What a resumed run may change: the settings each checkpoint was trained with are saved
beside it (``hubtool_config.json``); a resume whose settings differ in anything that changes
the result is refused, naming each difference. Only length and cadence may change (more steps
or epochs, evaluation and save cadence, checkpoints kept, early stopping, the tracker), and
each such change is recorded in run.json (``resumes``) and the card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubtool.core import rundir
from hubtool.core.rundir import RunDir
from hubtool.errors import UsageError
from hubtool.training.config import FinetuneConfig

CONFIG_FILE = "hubtool_config.json"
# Settings a resume may change: they decide how long and how often, not what is learnt.
SAFE_TO_CHANGE = {
    "epochs",
    "max_steps",
    "eval_every",
    "save_every",
    "keep_checkpoints",
    "early_stopping",
    "report_to",
    "output_dir",
    "eval_batch_size",
    "emissions",
    "emissions_country",
    "emissions_region",
}


def save_config(checkpoint: Path, cfg: FinetuneConfig) -> None:
    rundir.write_json(checkpoint / CONFIG_FILE, cfg.as_dict())


def saved_config(checkpoint: Path, run_dir: Path) -> dict[str, Any] | None:
    """The settings the checkpoint was trained with (older checkpoints: run.json's)."""
    for path in (checkpoint / CONFIG_FILE, RunDir(run_dir).run_json):
        if path.is_file():
            document = rundir.read_json(path)
            return document.get("config", document) if path.name == "run.json" else document
    return None


def resume_point(
    run_dir: Path, given: str, cfg: FinetuneConfig
) -> tuple[Path, dict[str, list[Any]]]:
    """(checkpoint, the safe changes) of a resume; a UsageError, before anything heavy
    loads, for a missing checkpoint or settings that may not change."""
    checkpoint = rundir.latest_checkpoint(run_dir, given)
    saved = saved_config(checkpoint, run_dir)
    step = int(rundir.read_json(checkpoint / "hubtool_state.json").get("step", 0))
    return checkpoint, changes(saved, cfg, step)


def changes(saved: dict[str, Any] | None, cfg: FinetuneConfig, step: int) -> dict[str, list[Any]]:
    """The safe changes ({setting: [before, now]}); a UsageError for any other."""
    if saved is None:
        return {}
    now = cfg.as_dict()
    differ = {k: [saved[k], v] for k, v in now.items() if k in saved and saved[k] != v}
    refused = {k: d for k, d in differ.items() if k not in SAFE_TO_CHANGE}
    if refused:
        listed = "; ".join(
            f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in refused.items()
        )
        raise UsageError(
            f"The run cannot be resumed with other settings ({listed}): the rest of the run "
            "would not be the recipe its run.json and card state.",
            "Resume with the run's own settings (in run.json under 'config'); only epochs, "
            "max_steps, eval_every, save_every, keep_checkpoints, early_stopping, report_to "
            "and the emissions settings may change. To train with new settings, start a new "
            "run (--overwrite, or another --output-dir).",
        )
    if cfg.max_steps is not None and cfg.max_steps < step:
        raise UsageError(
            f"max_steps {cfg.max_steps} is below the {step} steps the checkpoint already did.",
            f"Give --max-steps {step} or more.",
        )
    return {k: d for k, d in differ.items() if k != "output_dir"}


def history(run_dir: Path, step: int, changed: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """run.json's ``resumes`` with this resume added: [{step, changed}]."""
    path = RunDir(run_dir).run_json
    before = rundir.read_json(path).get("resumes", []) if path.is_file() else []
    return [*before, {"step": step, "changed": changed}]


def precision_change(run_dir: Path, now: Any) -> dict[str, list[Any]]:
    """{"precision": [before, now]} when ``--mixed-precision auto`` resolves to another
    precision than the run was trained in (a resume on another machine); else {}."""
    path = RunDir(run_dir).run_json
    before = (rundir.read_json(path).get("precision") or {}) if path.is_file() else {}
    used = before.get("used")
    if now is None or used is None or used == now.used:
        return {}
    return {"precision": [used, now.used]}
