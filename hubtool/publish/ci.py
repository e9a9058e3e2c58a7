"""``hubtool ci init``: a GitHub Actions workflow that publishes on tag, and a starter
hubtool.yaml, written into the user's repository (never over existing files without force)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubtool import tasks
from hubtool.core import rundir
from hubtool.errors import UsageError

WORKFLOW = Path(".github/workflows/publish-model.yml")
CONFIG = Path("hubtool.yaml")
REQUIREMENTS = Path("requirements.txt")
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DATASET = "stanfordnlp/sst2"


def starter_config(
    repo_id: str, model: str, dataset: str, task: str, options: dict[str, Any] | None = None
) -> str:
    """The starter hubtool.yaml, dumped from data. ``options``: the task's own settings
    (``source_lang``/``target_lang`` for translation; ``multi_label`` picks the gate)."""
    import yaml

    settings = dict(options or {})
    multi_label = bool(settings.pop("multi_label", False))
    document: dict[str, Any] = {
        "finetune": {
            "model": model,
            "dataset": dataset,
            "task": task,
            **settings,
            "epochs": 3,
            "batch_size": 16,
            "lr": 5e-5,
            "output_dir": "runs/release",
        },
        "push": {"repo_id": repo_id},
        "publish": {"require": [tasks.get(task).release_for(multi_label)]},
    }
    header = (
        "# hubtool.yaml: `hubtool publish --config hubtool.yaml --tag vX.Y.Z` trains, checks\n"
        "# and releases with these settings. Add a card: section (intended_uses, out_of_scope,\n"
        "# limitations, authors, contact) to say what only you know; see hubtool's README.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def workflow(repo_id: str, config: str = str(CONFIG), requirements: str = str(REQUIREMENTS)) -> str:
    from hubtool.cards.context import environment

    template = environment(None).get_template("publish-workflow.yml.j2")
    return template.render(repo_id=repo_id, config=config, requirements=requirements)


def init(
    root: Path,
    repo_id: str,
    model: str,
    dataset: str,
    task: str,
    force: bool,
    options: dict[str, Any] | None = None,
) -> list[Path]:
    """Write the workflow and hubtool.yaml; returns what was written. Refuses, writing
    nothing, when either exists and ``force`` is off. The workflow installs the repository's
    requirements.txt, which must name hubtool and the test tools."""
    from hubtool.core.hubclient import valid_repo_id

    for name, value in (("repo id", repo_id), ("model", model), ("dataset", dataset)):
        if not valid_repo_id(value):
            raise UsageError(f"{value!r} is not a Hub {name} (NAMESPACE/NAME).")
    options = {k: v for k, v in (options or {}).items() if v not in (None, False)}
    if task == "translation" and not (options.get("source_lang") and options.get("target_lang")):
        raise UsageError(
            "A translation release needs its language pair.",
            "Pass --source-lang and --target-lang (e.g. en and fr).",
        )
    if options.get("multi_label") and task != "text-classification":
        raise UsageError("--multi-label is a kind of text-classification.")
    files = {
        root / WORKFLOW: workflow(repo_id),
        root / CONFIG: starter_config(repo_id, model, dataset, task, options),
    }
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise UsageError(
            f"{', '.join(str(p) for p in existing)} already exist; nothing was written.",
            "Pass --force to replace them.",
        )
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        rundir.write_text(path, text)
    return list(files)
