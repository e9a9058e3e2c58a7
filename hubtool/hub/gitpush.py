"""``git push`` to the local Hub over smart HTTP, through the checks of the commit API.

``git http-backend`` receives the pack with ``http.receivepack`` on and hubtool's
``pre-receive`` hook (``hubtool.hub.prereceive``) configured for that one call: git keeps
the pushed objects in quarantine until the hook accepts every ref update, and moves each
ref with its own compare-and-swap (the one ``update_ref`` uses for API commits). Then the
repo's metadata is refreshed and commits pushed to ``refs/pr/N`` become events of that pull
request, as for commits made through the API.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hubtool.hub import discussions
from hubtool.hub.auth import Identity
from hubtool.hub.db import RepoRow
from hubtool.hub.service import HubService

HOOK = """#!{python}
from hubtool.hub.prereceive import main
raise SystemExit(main())
"""


def hooks_dir(svc: HubService) -> Path:
    """DATA_DIR/hooks with the pre-receive hook for this interpreter (written once)."""
    folder = svc.data_dir / "hooks"
    hook = folder / "pre-receive"
    text = HOOK.format(python=sys.executable)
    if not hook.is_file() or hook.read_text() != text:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".pre-receive.{os.getpid()}"
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, hook)
    return folder


def push_env(svc: HubService, row: RepoRow, who: Identity, writer: bool) -> dict[str, str]:
    """What ``git http-backend`` needs to receive a push into ``row`` from ``who``."""
    package_root = str(Path(__file__).resolve().parents[2])
    return {
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "http.receivepack",
        "GIT_CONFIG_VALUE_0": "true",
        "GIT_CONFIG_KEY_1": "core.hooksPath",
        "GIT_CONFIG_VALUE_1": str(hooks_dir(svc)),
        "GIT_CONFIG_KEY_2": "receive.denyDeleteCurrent",
        "GIT_CONFIG_VALUE_2": "true",
        "HUBTOOL_PUSH_DATA": str(svc.data_dir),
        "HUBTOOL_PUSH_TYPE": row.repo_type,
        "HUBTOOL_PUSH_REPO": row.repo_id,
        "HUBTOOL_PUSH_USER": who.user,
        "HUBTOOL_PUSH_WRITE": "1" if writer else "0",
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p),
        "REMOTE_USER": who.user,
    }


def refs_of(svc: HubService, row: RepoRow) -> dict[str, str]:
    return dict(svc.git(row).refs())


def after_push(svc: HubService, row: RepoRow, before: dict[str, str], who: Identity) -> None:
    """The index refreshed, and each commit pushed to a pull request an event of it."""
    repo = svc.git(row)
    after = refs_of(svc, row)
    for ref, sha in after.items():
        if ref.startswith("refs/pr/") and before.get(ref) != sha:
            span = f"{before[ref]}..{sha}" if ref in before else sha
            lines = repo._git("log", "--reverse", "--format=%H %s", span, "-n", "1000").stdout
            for line in lines.decode(errors="replace").splitlines():
                oid, _, subject = line.partition(" ")
                discussions.commit_event(svc, row.rowid, ref, subject, oid, who.user)
    if before.get("refs/heads/main") != after.get("refs/heads/main"):
        svc.refresh(row)
