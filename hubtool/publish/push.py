"""The push stage: a run's model folder, card and metrics to a Hub repo in one commit.

``plan_push`` only reads (GET requests): what the repo holds, what would be added, changed or
deleted, the card's diff and the metadata check, so ``--dry-run`` changes nothing.
``execute_push`` creates the repo if missing (never flipping an existing repo's visibility),
writes one commit of what changed (or opens a pull request) and tags it. Transient failures are
retried by planning again, so a commit that went through before its answer was lost is not
written twice; a push that fails leaves the run directory as it was, and runs again from scratch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubtool.core.hubclient import HubSettings, check_repo_id
from hubtool.core.rundir import RunDir
from hubtool.errors import CheckFailed, UsageError
from hubtool.publish import files as pushfiles

if TYPE_CHECKING:
    from huggingface_hub import HfApi


@dataclass(frozen=True)
class PushOptions:
    repo_id: str
    private: bool = False
    revision: str = "main"
    create_pr: bool = False
    tag: str | None = None
    commit_message: str | None = None
    attempts: int = 5


@dataclass
class PushPlan:
    options: PushOptions
    repo_exists: bool
    repo_private: bool | None
    head: str | None  # the branch's commit, None when the repo or branch does not exist
    changes: list[pushfiles.Change]
    skipped: list[tuple[str, str]]
    card_diff: str
    check: Any  # cardcheck.Report
    notes: list[str] = field(default_factory=list)
    tag_commit: str | None = None  # where opts.tag already points, if it exists

    @property
    def to_send(self) -> list[pushfiles.Change]:
        return [c for c in self.changes if c.status != "same"]


@dataclass
class PushResult:
    repo_url: str
    commit: str | None  # the commit the revision (or PR) now points to
    committed: bool
    sent: int
    pr_url: str | None = None
    tag: str | None = None
    created_repo: bool = False


def check_options(opts: PushOptions) -> None:
    check_repo_id(opts.repo_id, "the repo to push to")
    if opts.tag and not pushfiles.TAG.match(opts.tag):
        raise UsageError(f"{opts.tag!r} is not a valid tag name.", "Use a tag like v1.2.3.")
    if opts.create_pr and opts.tag:
        raise UsageError(
            "--tag and --create-pr do not go together: a pull request is not a release.",
            "Tag after the pull request is merged.",
        )


def plan_push(
    api: HfApi, run_dir: Path, opts: PushOptions, card_text: str | None = None
) -> PushPlan:
    """What a push would do; reads the repo, changes nothing. ``card_text`` replaces the run's
    README.md (a dry run's card for another repo id)."""
    check_options(opts)
    files, skipped = pushfiles.collect(run_dir)
    if card_text is not None:
        files["README.md"] = card_text.encode()
    exists, private = _repo_state(api, opts.repo_id)
    head, remote = _remote_files(api, opts.repo_id, opts.revision) if exists else (None, {})
    old_card = _remote_text(api, opts.repo_id, head, "README.md") if "README.md" in remote else None
    new_card = card_text or RunDir(run_dir).card.read_text()
    plan = PushPlan(
        opts,
        exists,
        private,
        head,
        pushfiles.diff_files(files, remote),
        skipped,
        pushfiles.card_diff(old_card, new_card),
        _check_card(run_dir, new_card),
    )
    if exists and opts.private and not private:
        plan.notes.append("the repo is public; hubtool will not make it private")
    if exists and opts.tag:
        refs = pushfiles.retrying(lambda: api.list_repo_refs(opts.repo_id))
        plan.tag_commit = {t.name: t.target_commit for t in refs.tags}.get(opts.tag)
        if plan.tag_commit and (plan.to_send or plan.tag_commit != head):
            plan.notes.append(
                f"tag {opts.tag} already exists at {plan.tag_commit[:12]}, not at this push"
            )
    return plan


def _repo_state(api: HfApi, repo_id: str) -> tuple[bool, bool | None]:
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = pushfiles.retrying(lambda: api.repo_info(repo_id))
    except RepositoryNotFoundError:
        return False, None
    return True, bool(info.private)


def _remote_files(api: HfApi, repo_id: str, revision: str) -> tuple[str | None, dict[str, Any]]:
    """(head commit, path -> RepoFile) of a branch; (None, main's files) for a new branch."""
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        info = pushfiles.retrying(lambda: api.repo_info(repo_id, revision=revision))
    except RevisionNotFoundError:
        if revision == "main":
            return None, {}
        return None, _remote_files(api, repo_id, "main")[1]
    entries = pushfiles.retrying(
        lambda: list(api.list_repo_tree(repo_id, revision=info.sha, recursive=True))
    )
    return info.sha, {e.path: e for e in entries if hasattr(e, "blob_id")}


def _remote_text(api: HfApi, repo_id: str, revision: str | None, name: str) -> str | None:
    path = pushfiles.retrying(lambda: api.hf_hub_download(repo_id, name, revision=revision))
    return Path(path).read_text(errors="replace")


def _check_card(run_dir: Path, text: str) -> Any:
    from hubtool.cards import checks as cardcheck
    from hubtool.cards.stage import known_paths, read_run

    files = read_run(run_dir)
    report = cardcheck.check_card(text, files.metrics, known_paths(files), [], strict=False)
    problems, note = cardcheck.server_problems(text)
    report.problems += problems
    report.warnings += [note] if note else []
    return report


# -- doing it -----------------------------------------------------------------------------------
def execute_push(api: HfApi, run_dir: Path, opts: PushOptions) -> PushResult:
    """Push, retrying transient failures by planning again (a lost answer is not a lost commit)."""
    for attempt in range(opts.attempts):
        plan = plan_push(api, run_dir, opts)
        try:
            return _execute(api, plan)
        except Exception as exc:
            if attempt == opts.attempts - 1 or not pushfiles.transient(exc):
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _execute(api: HfApi, plan: PushPlan) -> PushResult:
    opts = plan.options
    if not plan.check.ok:
        _refuse(plan.check, "RUN_DIR")
    hints = {
        "public": "Change its visibility on the Hub yourself, or push without --private.",
        "tag": "Release under a new version tag.",
    }
    for note in plan.notes:
        raise UsageError(
            f"Nothing was pushed: {opts.repo_id}: {note}.",
            hints["tag" if note.startswith("tag") else "public"],
        )
    created = False
    if not plan.repo_exists:
        api.create_repo(opts.repo_id, private=opts.private, exist_ok=True)
        created = True
    if opts.revision != "main" and plan.head is None and not opts.create_pr:
        api.create_branch(opts.repo_id, branch=opts.revision, exist_ok=True)
    result = PushResult(f"{api.endpoint}/{opts.repo_id}", plan.head, False, 0, created_repo=created)
    if plan.to_send:
        info = api.create_commit(
            opts.repo_id,
            operations=_operations(plan.to_send),
            commit_message=opts.commit_message or _message(plan),
            revision=opts.revision,
            create_pr=opts.create_pr,
            parent_commit=plan.head,
        )
        result.commit, result.committed, result.sent = info.oid, True, len(plan.to_send)
        result.pr_url = info.pr_url
    elif result.commit is None:
        result.commit = api.repo_info(opts.repo_id, revision=opts.revision).sha
    if opts.tag and plan.tag_commit is None:
        api.create_tag(opts.repo_id, tag=opts.tag, revision=result.commit)
    result.tag = opts.tag
    return result


def _operations(changes: list[pushfiles.Change]) -> list[Any]:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    ops: list[Any] = []
    for change in changes:
        if change.status == "delete":
            ops.append(CommitOperationDelete(path_in_repo=change.path))
        else:
            content = change.content
            assert content is not None
            source = str(content) if isinstance(content, Path) else content
            ops.append(CommitOperationAdd(path_in_repo=change.path, path_or_fileobj=source))
    return ops


def _message(plan: PushPlan) -> str:
    words = {"add": "added", "change": "changed", "delete": "deleted"}
    counts = {w: sum(c.status == s for c in plan.to_send) for s, w in words.items()}
    parts = [f"{n} {word}" for word, n in counts.items() if n]
    return f"Upload model with hubtool ({', '.join(parts)})"


def push_run(run_dir: Path, opts: PushOptions, settings: HubSettings, dry_run: bool = False) -> Any:
    """The push stage with the given Hub: the PushPlan on a dry run, else the PushResult."""
    from hubtool.core.hubclient import hub_errors, make_api

    api = make_api(settings)
    check_options(opts)
    card = card_for_repo(run_dir, opts.repo_id, settings, write=not dry_run)
    with hub_errors(settings, f"Pushing {run_dir} to {opts.repo_id}"):
        if dry_run:
            return plan_push(api, run_dir, opts, card)
        return execute_push(api, run_dir, opts)


def card_for_repo(run_dir: Path, repo_id: str, hub: HubSettings, write: bool) -> str | None:
    """Render the card again when it names another repo (or none): its snippet, model-index
    name and citation must load this repo. A card written for this repo is left as it is."""
    from hubtool.cards.stage import card_stage
    from hubtool.core import rundir

    saved = RunDir(run_dir).card_settings
    current = rundir.read_json(saved).get("repo_id") if saved.is_file() else None
    if current == repo_id and RunDir(run_dir).card.is_file():
        return None
    if not RunDir(run_dir).run_json.is_file():
        return None  # collect() explains what is missing
    outcome = card_stage(run_dir, [{"repo_id": repo_id}], hub, check_only=not write)
    if not outcome.report.ok:
        _refuse(outcome.report, str(run_dir))
    return outcome.text


def _refuse(report: Any, run_dir: str) -> None:
    raise CheckFailed(
        "The card fails its checks; nothing was pushed:" + report.listed(),
        f"Fix the card (`hubtool card {run_dir}`), then push again.",
    )
