"""Run huggingface_hub's own test suite (2.4.0) against a fresh local Hub and count the results.

Usage (from the repository root, with the project's virtualenv)::

    .venv/bin/python tools/hf_hub_suite.py                      # the default files, 120 s per test
    .venv/bin/python tools/hf_hub_suite.py --files test_hf_api.py test_snapshot_download.py
    .venv/bin/python tools/hf_hub_suite.py -k "Branch or Tag" --keep --work /tmp/hfsuite
    .venv/bin/python tools/hf_hub_suite.py --jobs 2 --timeout 120 --json results.json

What it does, in a work directory (``--work DIR``; default a temporary one, removed at the end
unless ``--keep``):

1. downloads the huggingface_hub 2.4.0 sdist with ``pip download --no-deps --no-binary :all:``
   (reused when ``DIR/sdist/`` already holds it) and extracts it afresh; copies in the files the
   sdist lacks, ``tests/conftest.py``, ``tests/__init__.py`` and ``tests/fixtures/``, from
   ``--shared`` (default: ``../shared/data/hf-hub-tests/tests`` beside the checkout). Without
   them it says so and exits 0 (a skip, not a failure);
2. installs the pytest plugins the suite needs that the project's venv lacks (pytest-env,
   pytest-mock, pytest-timeout, pytest-vcr, pytest-asyncio, jedi …) with
   ``pip install --no-deps --target DIR/plugins``: nothing is added to the project or its venv;
3. creates a fresh Hub data directory with the users, organizations and exact token strings that
   ``tests/testing_constants.py`` names (``hubtool hub user add`` and ``org add`` with
   ``--member``, and ``--private-by-default`` for the Enterprise org where hubtool has it;
   ``HubService`` for valid_org_hub's full name and ``db.add_token`` to register a given token
   string; user names hubtool's name rule refuses, such as ``__DUMMY_HUB_USER__``, are replaced
   by valid ones), then serves it with ``python -m hubtool hub serve --port 0``;
4. points the suite at it: ``ENDPOINT_STAGING`` and the renamed users in
   ``testing_constants.py``, the hard-coded ``https://hub-ci.huggingface.co`` in
   ``test_hf_api.py`` (``test_file_exists``), and the pytest-env block of the sdist's
   ``pyproject.toml`` (``HUGGINGFACE_CO_STAGING=0``, ``HF_ENDPOINT=<local URL>``). Xet stays on:
   ``HF_HUB_DISABLE_XET`` is never set (and is removed from the environment if present);
5. runs pytest (``-p no:cacheprovider``, junit XML, pytest-timeout per test, ``-n JOBS`` with
   pytest-xdist when ``--jobs`` > 1) with a small plugin of its own that records, for every
   test, the HTTP requests it sent to the local Hub (method, path, status, ``X-Error-Message``)
   and any attempt to reach another host, and that deselects the out-of-scope tests below;
6. prints a table per file (passed, failed, errors, skipped, out of scope) and the total of the
   in-scope tests, i.e. those that sent at least one request to the local Hub (or use a class or
   module fixture that did) and are not out of scope; then, for every in-scope test that failed,
   its first failing request to the Hub (``--json FILE`` keeps every request of every test).

Test files run by default (``DEFAULT_FILES``), each because it reaches model or dataset repos:

* test_hf_api.py: HfApi on repos: create/move/delete, settings, commits, LFS and Xet uploads,
  tree and file listing, branches, tags, refs, commits history, discussions and pull requests,
  access requests, squash, LFS file listing and deletion, whoami;
* test_file_download.py: hf_hub_download, get_hf_file_metadata, HEAD/resolve, cache, local_dir;
* test_snapshot_download.py: snapshot_download over trees and revisions;
* test_hf_file_system.py: HfFileSystem (fsspec) reads and writes on model and dataset repos;
* test_commit_api.py: commit operations (mostly client-side; kept as a baseline);
* test_commit_scheduler.py: CommitScheduler pushing a folder to a dataset repo;
* test_upload_pipeline.py: upload_large_folder's pipeline (2.4.0 has no test_upload_large_folder);
* test_xet_upload.py, test_xet_download.py, test_xet_utils.py: Xet uploads, downloads, tokens;
* test_copy_files.py: CommitOperationCopy between repo files (bucket parts out of scope);
* test_cache_layout.py, test_cache_no_symlinks.py, test_utils_cache.py: the cache after
  downloads (the tests that read huggingface.co's fixture repos end up out of scope);
* test_hub_mixin.py, test_hub_mixin_pytorch.py: push_to_hub / from_pretrained round trips;
* test_repocard.py: model and dataset cards pushed, loaded and updated (metadata_update);
* test_cli.py, test_cli_discussions.py: the ``hf`` CLI's repo, upload, download, branch, tag,
  discussion and PR commands (its many offline tests count as "offline");
* test_auth.py: login and whoami with the suite's tokens.

Not run: the bucket files (test_buckets*.py, test_bucket_live_follow.py: buckets are not model or
dataset repos), test_kernels.py (kernel repos), test_inference_*.py, test_oauth.py,
test_webhooks_server.py, test_jobs_api.py, test_sandbox.py (inference, OAuth, webhooks, Jobs and
Spaces sandboxes: not a local Hub's job), and the offline unit tests (the other test_utils_*.py,
test_serialization.py, test_dduf.py, test_lfs.py, test_local_folder.py, test_tree_cache.py,
test_shared_blobs.py, test_cli_framework.py, …), which never reach a Hub. Pass any of them with
``--files`` to run them anyway.

Out of scope, by rule (``OUT_OF_SCOPE``, each with its reason): tests marked ``production``
(deselected unless ``--all``), tests whose id names Spaces, inference, webhooks, collections,
billing, papers, buckets, jobs, kernels …, and, after the run, tests that reached such a route
(``OUT_OF_SCOPE_REQUESTS``, e.g. a fixture creating a bucket), asked the Hub for one of
huggingface.co's fixture repos (``PRODUCTION_NAMESPACES``) or tried to reach another host.
Tests that sent no request to the local Hub are counted as "offline", apart from the in-scope
total. Exit status: 0 when the suite ran (whatever its results), 2 when it could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HF_HUB_VERSION = "2.4.0"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data" / "hf-hub-tests" / "tests"
SUPPORT_FILES = ("conftest.py", "__init__.py", "fixtures")
STAGING_URL = "https://hub-ci.huggingface.co"
STAGING_URL_FILES = ("test_hf_api.py",)  # the one live test with a hard-coded staging URL

DEFAULT_FILES: tuple[str, ...] = (
    "test_hf_api.py",
    "test_file_download.py",
    "test_snapshot_download.py",
    "test_hf_file_system.py",
    "test_commit_api.py",
    "test_commit_scheduler.py",
    "test_upload_pipeline.py",
    "test_xet_upload.py",
    "test_xet_download.py",
    "test_xet_utils.py",
    "test_copy_files.py",
    "test_cache_layout.py",
    "test_cache_no_symlinks.py",
    "test_utils_cache.py",
    "test_hub_mixin.py",
    "test_hub_mixin_pytorch.py",
    "test_repocard.py",
    "test_cli.py",
    "test_cli_discussions.py",
    "test_auth.py",
)

# (import name, pip requirement): what the suite needs beyond the project's venv. Installed with
# --no-deps: their own dependencies (pytest, PyYAML, typing-extensions …) are the venv's.
PLUGINS: tuple[tuple[str, str], ...] = (
    ("pytest_env", "pytest-env"),
    ("dotenv", "python-dotenv"),  # pytest-env's dependency
    ("pytest_mock", "pytest-mock"),
    ("pytest_timeout", "pytest-timeout"),
    ("pytest_vcr", "pytest-vcr"),  # registers the `vcr` mark the suite uses (--strict-markers)
    ("vcr", "vcrpy"),
    ("wrapt", "wrapt"),  # vcrpy's dependency
    ("pytest_asyncio", "pytest-asyncio"),  # registers the `asyncio` mark
    ("jedi", "jedi"),  # test_hub_mixin.py imports it
    ("parso", "parso"),  # jedi's dependency
)

# Markers whose tests are deselected (unless --all), with the reason.
OUT_OF_SCOPE_MARKERS: dict[str, str] = {
    "production": "runs against huggingface.co production (no network here)",
    "vcr": "replays recorded huggingface.co traffic (Spaces), not a local Hub's job",
}

# (regex searched in the test id, reason): tests that are out of scope by name.
OUT_OF_SCOPE: tuple[tuple[str, str], ...] = (
    # "Space"/"space" as a word of the id, not inside "namespace" or "whitespace"
    (
        r"(?:(?<![A-Za-z])[Ss]paces?|(?<=[a-z])Spaces?)(?=[A-Z_\]\-:]|$)",
        "Spaces are not a local Hub's job",
    ),
    (r"(?i)inference", "inference (providers, endpoints, catalog) is not a local Hub's job"),
    (r"(?i)webhook", "webhooks are not a local Hub's job"),
    (r"(?i)collection", "collections are not a local Hub's job"),
    (r"(?i)billing", "billing is not a local Hub's job"),
    (r"(?i)bucket", "buckets are not model or dataset repos"),
    (r"(?i)paper", "papers are huggingface.co content"),
    (r"(?i)kernel", "kernel repos are not model or dataset repos"),
    (r"(?i)(?:\bjobs?\b|Jobs|_jobs?_|_job\b|job_id|volume)", "Jobs are not a local Hub's job"),
    (
        r"(?i)oauth|device_?code|refresh_?access|auto_?refresh",
        "OAuth flows are not a local Hub's job",
    ),
    (r"(?i)skill|extension|marketplace|uv_?script", "CLI extensions and skills come from GitHub"),
    (r"(?i)telemetry", "telemetry is not a repo"),
    (r"(?i)sandbox", "Spaces sandboxes are not a local Hub's job"),
    (r"(?i)datasets_?(?:sql|parquet)|DatasetsSql|DatasetsParquet", "dataset viewer (parquet/SQL)"),
)

# (regex on the path of a request the test sent to the Hub, or on a URL in its failure message,
# reason): what a test reached decides too, e.g. a fixture that creates a bucket.
OUT_OF_SCOPE_REQUESTS: tuple[tuple[str, str], ...] = (
    (r"^/api/buckets(?:/|$|\?)", "buckets are not model or dataset repos"),
    (r"^/api/spaces(?:/|$|\?)", "Spaces are not a local Hub's job"),
    (r"^/api/collections(?:/|$|\?)", "collections are not a local Hub's job"),
    (r"^/api/(?:jobs|scheduled-jobs)(?:/|$|\?)", "Jobs are not a local Hub's job"),
    (
        r"^/api/(?:inference-endpoints|inference-proxy)(?:/|$|\?)",
        "inference is not a local Hub's job",
    ),
    (r"^/api/settings/webhooks(?:/|$|\?)", "webhooks are not a local Hub's job"),
    (r"^/api/(?:papers|daily_papers)(?:/|$|\?)", "papers are huggingface.co content"),
)

# huggingface.co repos the Xet download tests read, recreated on the local Hub (uploaded through
# Xet) so that those production-marked tests run here: (repo, file, float32 values in it).
SEEDED_REPOS: tuple[tuple[str, str, int], ...] = (
    ("celinah/dummy-xet-testing", "dummy.safetensors", 1 << 18),
)
# Files whose production-marked tests read only the seeded repos: kept, with the suite's
# production endpoint pointed at the local Hub too (``patch_constants``).
SEEDED_FILES = ("test_xet_download.py",)

# Namespaces (and bare ids) of repos that exist on huggingface.co, not on a fresh local Hub: a
# test that asks the local Hub for one of them needs production content.
PRODUCTION_NAMESPACES: tuple[str, ...] = (
    "hf-internal-testing",
    "julien-c",
    "gaia-benchmark",
    "lhoestq",
    "brianronan",
    "huggingface-hub-ci",
    "huggingface",
    "google",
    "google-bert",
    "openai-community",
    "openai",
    "bigscience",
    "meta-llama",
    "microsoft",
    "facebook",
    "Wauplin",
    "HuggingFaceH4",
    "HuggingFaceM4",
    "stabilityai",
    "distilbert",
    "squad",
)
PRODUCTION_BARE_IDS: tuple[str, ...] = (
    "gpt2",
    "bert-base-uncased",
    "bert-base-cased",
    "xlm-roberta-base",
)


# -- the work directory ------------------------------------------------------------------------
@contextmanager
def work_directory(path: Path | None, keep: bool) -> Iterator[Path]:
    """``path`` (created), or a temporary directory removed at the end unless ``keep``."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="hf-hub-suite-"))
    try:
        yield tmp
    finally:
        if keep:
            print(f"Work directory kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def fetch_sdist(work: Path) -> Path:
    """The huggingface_hub sdist, downloaded once into ``work/sdist``."""
    folder = work / "sdist"
    name = f"huggingface_hub-{HF_HUB_VERSION}.tar.gz"
    if (folder / name).is_file():
        return folder / name
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-binary",
        ":all:",
        f"huggingface_hub=={HF_HUB_VERSION}",
        "-d",
        str(folder),
    ]
    subprocess.run(cmd, check=True)
    found = sorted(folder.glob(f"huggingface_hub-{HF_HUB_VERSION}.tar.gz"))
    if not found:
        raise SystemExit(f"pip download did not produce {name} in {folder}")
    return found[0]


def extract_sdist(tarball: Path, work: Path) -> Path:
    """Extract ``tarball`` afresh into ``work/src``; return the sdist's root folder."""
    dest = work / "src"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")
    root = dest / f"huggingface_hub-{HF_HUB_VERSION}"
    if not (root / "tests").is_dir():
        raise SystemExit(f"{tarball} has no tests/ folder")
    return root


def copy_support_files(shared: Path, tests: Path) -> None:
    """Copy conftest.py, __init__.py and fixtures/ from ``shared`` into the sdist's tests/."""
    for name in SUPPORT_FILES:
        source, target = shared / name, tests / name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
        for path in [target, *(target.rglob("*") if target.is_dir() else [])]:
            path.chmod(0o755 if path.is_dir() else 0o644)  # the shared copies are read-only


def missing_support_files(shared: Path) -> list[str]:
    return [name for name in SUPPORT_FILES if not (shared / name).exists()]


# -- plugins -----------------------------------------------------------------------------------
def ensure_plugins(work: Path) -> Path:
    """A folder (for PYTHONPATH) where every module in ``PLUGINS`` imports; install what lacks."""
    target = work / "plugins"
    target.mkdir(parents=True, exist_ok=True)
    missing = [req for module, req in PLUGINS if not importable(module, target)]
    if missing:
        print(f"Installing into {target}: {' '.join(missing)}")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(target),
            "--upgrade",
            *missing,
        ]
        subprocess.run(cmd, check=True)
    still = [module for module, _req in PLUGINS if not importable(module, target)]
    if still:
        raise SystemExit(f"Cannot import {', '.join(still)} even after installing them")
    return target


def importable(module: str, extra_path: Path) -> bool:
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    env = {**os.environ, "PYTHONPATH": python_path(extra_path)}
    return subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def python_path(*folders: Path) -> str:
    rest = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*(str(f) for f in folders), *([rest] if rest else [])])


# -- the suite's identities --------------------------------------------------------------------
@dataclass
class Identities:
    """The users, organizations and tokens testing_constants.py names (after renaming)."""

    renames: dict[str, str]  # constant name -> valid user name, for names hubtool refuses
    users: dict[str, str]  # user name -> full name
    orgs: dict[str, Org]
    tokens: dict[str, str]  # token string -> user name


@dataclass
class Org:
    fullname: str
    members: list[str]
    private_by_default: bool = False  # an Enterprise org's new repos are private


def read_constants(path: Path) -> dict[str, str]:
    """The ``NAME = "string"`` assignments of testing_constants.py."""
    pattern = re.compile(r'^([A-Z_][A-Z0-9_]*)\s*=\s*"([^"]*)"', re.MULTILINE)
    return dict(pattern.findall(path.read_text()))


def valid_name(name: str) -> str:
    """``name`` if hubtool accepts it as a user name, else the nearest name it accepts."""
    from hubtool.errors import UsageError
    from hubtool.hub.auth import check_name

    try:
        check_name(name, "User name")
        return name
    except UsageError:
        pass
    fixed = re.sub(r"[^A-Za-z0-9._-]", "", name)
    fixed = re.sub(r"([._-])[._-]+", r"\1", fixed).strip("._-")[:96] or "hubuser"
    check_name(fixed, "User name")
    return fixed


def identities(constants: dict[str, str]) -> Identities:
    """Who the suite logs in as: USER (in valid_org_hub), OTHER_USER, the enterprise admin."""
    renames: dict[str, str] = {
        key: valid_name(constants[key])
        for key in ("USER", "OTHER_USER", "ENTERPRISE_USER", "ENTERPRISE_ORG")
        if key in constants and valid_name(constants[key]) != constants[key]
    }

    def name(key: str) -> str:
        return renames.get(key, constants[key])

    user, other, admin = name("USER"), name("OTHER_USER"), name("ENTERPRISE_USER")
    return Identities(
        renames=renames,
        users={user: constants.get("FULL_NAME", user), other: other, admin: admin},
        # test_whoami_with_passing_token expects USER in "valid_org_hub", full name "Dummy Hub Org"
        orgs={
            "valid_org_hub": Org("Dummy Hub Org", [user]),
            # test_create_repo_private_by_default: the Enterprise org makes private repos
            name("ENTERPRISE_ORG"): Org(name("ENTERPRISE_ORG"), [admin], private_by_default=True),
        },
        tokens={
            constants["TOKEN"]: user,
            constants["OTHER_TOKEN"]: other,
            constants["ENTERPRISE_TOKEN"]: admin,
        },
    )


def hub_cli(data_dir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "hubtool", "hub", *args, "--data-dir", str(data_dir)]
    done = subprocess.run(cmd, cwd=data_dir.parent, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`hubtool hub {' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def seed_hub(data_dir: Path, who: Identities) -> None:
    """Create the users, organizations and exact tokens in a fresh Hub data directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for user, fullname in who.users.items():
        hub_cli(data_dir, "user", "add", user, "--fullname", fullname)
    can_private = "--private-by-default" in hub_cli(data_dir, "org", "add", "--help")
    from hubtool.hub.auth import hash_token
    from hubtool.hub.service import HubService, now_iso

    # `org add` takes no full name, and no command registers a given token string: HubService
    service = HubService(data_dir)
    for org, spec in who.orgs.items():
        if spec.fullname == org:
            flags = ["--private-by-default"] if spec.private_by_default and can_private else []
            members = [arg for member in spec.members for arg in ("--member", member)]
            hub_cli(data_dir, "org", "add", org, *members, *flags)
            continue
        service.add_user(org, spec.fullname, is_org=True)
        for member in spec.members:
            service.add_member(org, member)
    for token, user in who.tokens.items():
        service.db.add_token(hash_token(token), user, "write", f"{user}-suite", now_iso())
    close = getattr(service.db, "close", None)
    if callable(close):
        close()


SEED = """
import sys
from huggingface_hub import HfApi
api = HfApi(token=sys.argv[1])
api.create_repo(sys.argv[2], exist_ok=True)
api.upload_file(path_or_fileobj=sys.argv[3], path_in_repo=sys.argv[4], repo_id=sys.argv[2])
"""


def seed_repos(data_dir: Path, url: str, home: Path) -> None:
    """The huggingface.co repos of ``SEEDED_REPOS``, made on the running local Hub by their
    owner and uploaded through Xet (as the real ones are stored)."""
    import numpy as np
    from safetensors.numpy import save

    from hubtool.hub.service import HubService

    service = HubService(data_dir)
    env = {**os.environ, "HF_HOME": str(home), "HF_ENDPOINT": url}
    home.mkdir(parents=True, exist_ok=True)
    for repo, filename, values in SEEDED_REPOS:
        owner = repo.split("/", 1)[0]
        if service.db.get_user(owner) is None:
            service.add_user(owner)
        token = service.create_token(owner, write=True, name="suite-seed")
        weights = home / filename
        rng = np.random.default_rng(0)
        weights.write_bytes(save({"w": rng.standard_normal(values).astype(np.float32)}))
        done = subprocess.run(
            [sys.executable, "-c", SEED, token, repo, str(weights), filename],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"Seeding {repo} failed:\n{done.stderr[-2000:]}")


# -- the local Hub -----------------------------------------------------------------------------
@dataclass
class LocalHub:
    process: subprocess.Popen[bytes]
    url: str
    log: Path


def start_hub(data_dir: Path, log: Path, timeout: float = 60.0) -> LocalHub:
    """``hubtool hub serve --port 0`` on ``data_dir``; wait for the URL it writes."""
    url_file = data_dir.parent / "hub-url.txt"
    url_file.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "hubtool",
        "hub",
        "serve",
        "--port",
        "0",
        "--url-file",
        str(url_file),
        "--data-dir",
        str(data_dir),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir.parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if url_file.is_file() and url_file.read_text().strip():
            return LocalHub(process, url_file.read_text().strip().rstrip("/"), log)
        if process.poll() is not None:
            break
        time.sleep(0.2)
    stop_hub(LocalHub(process, "", log))
    raise SystemExit(f"The local Hub did not start; see {log}:\n{log.read_text()[-2000:]}")


def stop_hub(hub: LocalHub) -> None:
    if hub.process.poll() is None:
        hub.process.send_signal(signal.SIGTERM)
        try:
            hub.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            hub.process.kill()
            hub.process.wait()


# -- patching the suite ------------------------------------------------------------------------
def patch_constants(path: Path, url: str, renames: dict[str, str]) -> None:
    """ENDPOINT_STAGING -> ``url``; renamed users; the token strings stay as they are."""
    text = path.read_text()
    # production too: only tests of SEEDED_FILES keep the mark, and they read seeded repos
    for key, value in {"ENDPOINT_STAGING": url, "ENDPOINT_PRODUCTION": url, **renames}.items():
        text, count = re.subn(
            rf'^{key}\s*=\s*"[^"]*"', f'{key} = "{value}"', text, flags=re.MULTILINE
        )
        if count != 1:
            raise SystemExit(f"{path}: expected one `{key} = ...` line, found {count}")
    path.write_text(text)


def patch_staging_urls(tests: Path, url: str) -> None:
    for name in STAGING_URL_FILES:
        path = tests / name
        if path.is_file():
            path.write_text(path.read_text().replace(STAGING_URL, url))


def patch_pytest_env(pyproject: Path, url: str) -> None:
    """The pytest-env block ([tool.pytest.ini_options] env = [...]): staging off, HF_ENDPOINT on."""
    text = pyproject.read_text()
    block = re.search(r"^env = \[\n(.*?)^\]", text, flags=re.MULTILINE | re.DOTALL)
    if block is None:
        raise SystemExit(f"{pyproject}: no pytest-env `env = [...]` block")
    lines = [
        line
        for line in block.group(1).splitlines()
        if not re.match(r'\s*"(HUGGINGFACE_CO_STAGING|HF_ENDPOINT|HF_HUB_DISABLE_XET)=', line)
    ]
    lines += ['    "HUGGINGFACE_CO_STAGING=0",', f'    "HF_ENDPOINT={url}",']
    new_block = "env = [\n" + "\n".join(lines) + "\n]"
    pyproject.write_text(text[: block.start()] + new_block + text[block.end() :])


# -- the recording plugin ----------------------------------------------------------------------
PLUGIN_SOURCE = r'''
"""hf_hub_suite's pytest plugin: deselect out-of-scope tests; record each test's HTTP traffic."""
from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest

_CONFIG = json.loads(Path(os.environ["HFSUITE_CONFIG"]).read_text())
_LOCAL_PORT = int(_CONFIG["local_port"])
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_MAX_REQUESTS = 400
_lock = threading.Lock()
_state: dict = {"nodeid": None}
_traffic: dict[str, dict] = {}


def _is_local(host: str | None, port: int | None) -> bool:
    return (host or "") in _LOCAL_HOSTS and port == _LOCAL_PORT


def _entry(nodeid: str) -> dict:
    return _traffic.setdefault(nodeid, {"local": [], "local_count": 0, "foreign": []})


def _record(request, response, exc) -> None:
    url = request.url
    nodeid = _state["nodeid"] or "<between tests>"
    with _lock:
        entry = _entry(nodeid)
        if not _is_local(url.host, url.port):
            host = url.host or "?"
            if host not in entry["foreign"]:
                entry["foreign"].append(host)
            return
        entry["local_count"] += 1
        if len(entry["local"]) >= _MAX_REQUESTS:
            return
        raw = url.raw_path.decode("ascii", "replace")
        item = {"m": request.method, "p": raw[:400]}
        if response is not None:
            item["s"] = response.status_code
            if response.status_code >= 400:
                for header in ("x-error-code", "x-error-message"):
                    if response.headers.get(header):
                        item[header] = response.headers[header][:400]
        else:
            item["exc"] = f"{type(exc).__name__}: {exc}"[:400]
        entry["local"].append(item)


def _attach_body(response) -> None:
    """Add the error body (already read) to the last matching local request."""
    if response.status_code < 400 or not hasattr(response, "_content"):
        return
    url = response.request.url
    if not _is_local(url.host, url.port):
        return
    raw = url.raw_path.decode("ascii", "replace")[:400]
    with _lock:
        entry = _traffic.get(_state["nodeid"] or "<between tests>")
        for item in reversed(entry["local"] if entry else []):
            if item.get("p") == raw and item.get("s") == response.status_code:
                item.setdefault("body", response.content[:600].decode("utf-8", "replace"))
                break


def _wrap_transports() -> None:
    sync_handle = httpx2.HTTPTransport.handle_request
    async_handle = httpx2.AsyncHTTPTransport.handle_async_request
    sync_send = httpx2.Client.send
    async_send = httpx2.AsyncClient.send

    def handle_request(self, request):
        try:
            response = sync_handle(self, request)
        except Exception as exc:
            _record(request, None, exc)
            raise
        _record(request, response, None)
        return response

    async def handle_async_request(self, request):
        try:
            response = await async_handle(self, request)
        except Exception as exc:
            _record(request, None, exc)
            raise
        _record(request, response, None)
        return response

    def send(self, request, **kwargs):
        response = sync_send(self, request, **kwargs)
        try:
            _attach_body(response)
        except Exception:
            pass
        return response

    async def send_async(self, request, **kwargs):
        response = await async_send(self, request, **kwargs)
        try:
            _attach_body(response)
        except Exception:
            pass
        return response

    httpx2.HTTPTransport.handle_request = handle_request
    httpx2.AsyncHTTPTransport.handle_async_request = handle_async_request
    httpx2.Client.send = send
    httpx2.AsyncClient.send = send_async


_wrap_transports()


def _out_of_scope(item) -> str | None:
    if _CONFIG["run_all"]:
        return None
    seeded = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1] in _CONFIG["seeded_files"]
    for marker, reason in _CONFIG["markers"].items():
        if marker == "production" and seeded:
            continue  # the repos it reads were recreated on the local Hub
        if item.get_closest_marker(marker) is not None:
            return f"marked {marker}: {reason}"
    for pattern, reason in _CONFIG["rules"]:
        if re.search(pattern, item.nodeid):
            return reason
    return None


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected theirs
def pytest_collection_modifyitems(session, config, items) -> None:
    keep, dropped = [], {}
    for item in items:
        reason = _out_of_scope(item)
        if reason is None:
            keep.append(item)
        else:
            dropped[item.nodeid] = reason
    if dropped:
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid in dropped])
        items[:] = keep
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    path = Path(_CONFIG["record_dir"]) / f"deselected-{worker}.json"
    path.write_text(json.dumps(dropped, indent=0))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _state["nodeid"] = item.nodeid
    try:
        return (yield)
    finally:
        _flush(item)
        _state["nodeid"] = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    if call.when == "setup" and not any(k == "nodeid" for k, _v in item.user_properties):
        item.user_properties.append(("nodeid", item.nodeid))  # for the junit XML
    report = yield
    if call.when == "setup":
        with _lock:
            item.stash[_SETUP_COUNT] = _entry(item.nodeid)["local_count"]
    record = item.stash.setdefault(_REPORTS, {})
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    record[report.when] = {
        "outcome": report.outcome,
        "message": (crash.message if crash is not None else str(report.longrepr or ""))[:1500]
        if report.outcome != "passed"
        else "",
    }
    return report


_REPORTS = pytest.StashKey[dict]()
_SETUP_COUNT = pytest.StashKey[int]()


def _wide_fixtures(item) -> list[str]:
    """The class- and module-scoped fixtures the test uses, as "KEY::NAME" (KEY: their scope)."""
    info = getattr(item, "_fixtureinfo", None)
    out = []
    for name, defs in (getattr(info, "name2fixturedefs", None) or {}).items():
        if name.startswith("vcr"):  # pytest-vcr's configuration, never a request
            continue
        scope = getattr(defs[-1], "scope", "function") if defs else "function"
        if scope == "class" and item.cls is not None:
            out.append(f"{item.nodeid.rsplit('::', 1)[0]}::{name}")
        elif scope == "module":
            out.append(f"{item.nodeid.split('::', 1)[0]}::{name}")
    return out


def _flush(item) -> None:
    with _lock:
        traffic = _traffic.pop(item.nodeid, {"local": [], "local_count": 0, "foreign": []})
        _traffic.pop("<between tests>", None)  # background threads that outlived their test
    line = {
        "nodeid": item.nodeid,
        "markers": sorted({m.name for m in item.iter_markers()}),
        "phases": item.stash.get(_REPORTS, {}),
        "setup_local_count": item.stash.get(_SETUP_COUNT, 0),
        "wide_fixtures": _wide_fixtures(item),
        **traffic,
    }
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with (Path(_CONFIG["record_dir"]) / f"records-{worker}.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")
'''


def write_plugin(folder: Path) -> None:
    (folder / "hfsuite_plugin.py").write_text(PLUGIN_SOURCE.lstrip())


# -- running pytest ----------------------------------------------------------------------------
@dataclass
class RunPaths:
    root: Path  # the sdist's root (pytest's rootdir and cwd)
    junit: Path
    records: Path
    log: Path
    config: Path


def pytest_command(args: argparse.Namespace, files: Sequence[str], paths: RunPaths) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *(f"tests/{f}" for f in files),
        "-p",
        "no:cacheprovider",
        "-p",
        "hfsuite_plugin",
        f"--junitxml={paths.junit}",
        "-o",
        "junit_family=xunit1",
        f"--timeout={args.timeout}",
        "--log-cli-level=WARNING",
        "-rN",
    ]
    if args.jobs > 1:
        cmd += ["-n", str(args.jobs)]
    if args.k:
        cmd += ["-k", args.k]
    return cmd + list(args.pytest_args)


def suite_env(url: str, plugins: Path, paths: RunPaths) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_XET"}
        and not key.startswith("PYTEST_")
    }
    env.update(
        PYTHONPATH=python_path(plugins),
        HF_ENDPOINT=url,
        HUGGINGFACE_CO_STAGING="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HFSUITE_CONFIG=str(paths.config),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run_pytest(
    cmd: list[str], env: dict[str, str], paths: RunPaths, overall: float, echo: bool
) -> int:
    """Run pytest with its output in ``paths.log`` (and on screen with ``echo``); its exit code."""
    started = time.monotonic()
    progress = re.compile(r"\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
    seen = 0
    with paths.log.open("w") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=paths.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                if echo:
                    sys.stdout.write(line)
                elif progress.search(line):
                    seen += 1
                    if seen % 50 == 0:
                        print(f"  … {seen} results, {time.monotonic() - started:.0f} s", flush=True)
                if time.monotonic() - started > overall:
                    print(f"Overall timeout ({overall:.0f} s): stopping pytest", flush=True)
                    os.killpg(proc.pid, signal.SIGTERM)
                    break
        finally:
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
    return rc


# -- results -----------------------------------------------------------------------------------
OUTCOMES = ("passed", "failed", "error", "skipped")


@dataclass
class TestResult:
    nodeid: str
    outcome: str  # one of OUTCOMES
    message: str = ""
    scope: str = "offline"  # "in", "offline", or "out: <reason>"
    local_count: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    @property
    def file(self) -> str:
        return self.nodeid.split("::", 1)[0].removeprefix("tests/")


def junit_nodeid(case: ET.Element) -> str:
    """The pytest node id of a junit <testcase> (the plugin's property, else rebuilt)."""
    for prop in case.iter("property"):
        if prop.get("name") == "nodeid":
            return prop.get("value", "")
    file = case.get("file", "")
    classname = case.get("classname", "")
    module = file.removesuffix(".py").replace("/", ".")
    classes = classname.removeprefix(module).strip(".")
    return "::".join(part for part in (file, *classes.split("."), case.get("name", "")) if part)


def parse_junit(path: Path) -> dict[str, TestResult]:
    results: dict[str, TestResult] = {}
    rank = {o: i for i, o in enumerate(("passed", "skipped", "failed", "error"))}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag, name in (("skipped", "skipped"), ("failure", "failed"), ("error", "error")):
            found = case.find(tag)
            if found is not None and rank[name] >= rank[outcome]:
                outcome, message = name, (found.get("message") or found.text or "")[:1500]
        nodeid = junit_nodeid(case)
        old = results.get(nodeid)
        if old is None or rank[outcome] > rank[old.outcome]:
            results[nodeid] = TestResult(nodeid, outcome, message)
    return results


def read_records(folder: Path) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("records-*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                row["worker"] = path.stem.removeprefix("records-")
                records[row["nodeid"]] = row
    return records


def read_deselected(folder: Path) -> dict[str, str]:
    dropped: dict[str, str] = {}
    for path in sorted(folder.glob("deselected-*.json")):
        dropped.update(json.loads(path.read_text()))
    return dropped


def outcome_of(record: dict[str, Any]) -> tuple[str, str]:
    """A test's outcome from the plugin's phase reports (when there is no junit XML)."""
    phases = record.get("phases", {})
    for when in ("setup", "call", "teardown"):
        phase = phases.get(when)
        if phase and phase["outcome"] == "failed":
            return ("failed" if when == "call" else "error"), phase["message"]
        if phase and phase["outcome"] == "skipped":
            return "skipped", phase["message"]
    return ("passed", "") if "call" in phases else ("error", "did not finish (timeout or crash)")


def production_request(requests: Iterable[dict[str, Any]]) -> str | None:
    """The first request for one of huggingface.co's fixture repos, if any."""
    names = "|".join(re.escape(n) for n in PRODUCTION_NAMESPACES)
    bare = "|".join(re.escape(n) for n in PRODUCTION_BARE_IDS)
    pattern = re.compile(
        rf"^/(?:api/)?(?:(?:models|datasets|spaces)/)?(?:(?:{names})(?:/|%2F)|(?:{bare})(?:/|$|\?))"
    )
    for req in requests:
        if pattern.search(req.get("p", "")):
            return f"{req.get('m')} {req.get('p')}"
    return None


def request_rule(requests: Iterable[dict[str, Any]], message: str) -> str | None:
    """The reason a test is out of scope because of what it reached, if any."""
    paths = [req.get("p", "") for req in requests]
    paths += [urlsplit(url).path for url in re.findall(r"https?://[^\s'\"]+", message)]
    for pattern, reason in OUT_OF_SCOPE_REQUESTS:
        if any(re.search(pattern, path) for path in paths):
            return reason
    return None


def name_rule(nodeid: str) -> str | None:
    for pattern, reason in OUT_OF_SCOPE:
        if re.search(pattern, nodeid):
            return reason
    return None


def classify(result: TestResult, record: dict[str, Any] | None) -> None:
    """Fill in the traffic of ``result`` and decide whether it is in scope."""
    record = record or {}
    result.local_count = int(record.get("local_count", 0))
    result.requests = list(record.get("local", []))
    result.foreign = list(record.get("foreign", []))
    markers = set(record.get("markers", []))
    if result.nodeid.split("::", 1)[0].rsplit("/", 1)[-1] in SEEDED_FILES:
        markers.discard("production")  # it reads the repos seeded on the local Hub
    reason = next(
        (f"marked {m}: {r}" for m, r in OUT_OF_SCOPE_MARKERS.items() if m in markers), None
    )
    reason = reason or name_rule(result.nodeid) or request_rule(result.requests, result.message)
    prod = production_request(result.requests)
    if reason is None and prod:
        reason = f"needs huggingface.co content ({prod})"
    if reason is None and result.foreign:
        reason = f"tried to reach {', '.join(result.foreign)} (no network)"
    if reason is not None:
        result.scope = f"out: {reason}"
    elif result.local_count > 0:
        result.scope = "in"
    else:
        result.scope = "offline"


def collect_results(paths: RunPaths) -> tuple[dict[str, TestResult], dict[str, str]]:
    records = read_records(paths.records)
    if paths.junit.is_file():
        results = parse_junit(paths.junit)
    else:
        print("No junit XML (pytest was stopped?): results from the plugin's records")
        results = {}
    for nodeid, record in records.items():
        if nodeid not in results:
            results[nodeid] = TestResult(nodeid, *outcome_of(record))
    for nodeid, result in results.items():
        classify(result, records.get(nodeid))
    inherit_fixture_scope(results, records)
    return results, read_deselected(paths.records)


def inherit_fixture_scope(
    results: dict[str, TestResult], records: dict[str, dict[str, Any]]
) -> None:
    """An "offline" test that depends on a class or module fixture that reached the Hub is in.

    Such a fixture sends its requests during the setup of the first test that uses it (per
    worker); the other tests use what it made without a request of their own, and if it failed,
    they replay its error.
    """
    reaching: set[str] = set()
    seen: set[tuple[str, str]] = set()
    for record in records.values():  # in the order the tests ran, per worker
        worker = str(record.get("worker", "main"))
        for fixture in record.get("wide_fixtures", []):
            if (worker, fixture) in seen:
                continue
            seen.add((worker, fixture))
            if record.get("setup_local_count", 0) > 0:
                reaching.add(fixture)
    for nodeid, result in results.items():
        fixtures = set((records.get(nodeid) or {}).get("wide_fixtures", []))
        if result.scope == "offline" and fixtures & reaching:
            result.scope = "in"


# -- reporting ---------------------------------------------------------------------------------
def table_rows(results: dict[str, TestResult], deselected: dict[str, str]) -> list[list[str]]:
    per_file: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results.values():
        counts = per_file[result.file]
        counts[result.outcome] += 1
        if result.scope == "in":
            counts["in"] += 1
            counts["in_passed"] += result.outcome == "passed"
        elif result.scope.startswith("out"):
            counts["out"] += 1
        else:
            counts["offline"] += 1
    for nodeid in deselected:
        per_file[nodeid.split("::", 1)[0].removeprefix("tests/")]["deselected"] += 1
    rows = []
    total: Counter[str] = Counter()
    for file in sorted(per_file):
        counts = per_file[file]
        total.update(counts)
        rows.append(row_for(file, counts))
    rows.append(row_for("TOTAL", total))
    return rows


COLUMNS = (
    "file",
    "passed",
    "failed",
    "errors",
    "skipped",
    "deselected",
    "out",
    "offline",
    "in-scope pass",
)


def row_for(name: str, c: Counter[str]) -> list[str]:
    return [
        name,
        str(c["passed"]),
        str(c["failed"]),
        str(c["error"]),
        str(c["skipped"]),
        str(c["deselected"]),
        str(c["out"]),
        str(c["offline"]),
        f"{c['in_passed']}/{c['in']}",
    ]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(COLUMNS, widths, strict=True))
    )
    out = [line, "-" * len(line)]
    for row in rows:
        out.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)


def first_failing_request(result: TestResult) -> str:
    for req in result.requests:
        status = req.get("s")
        if status is None or status >= 400:
            detail = req.get("x-error-message") or req.get("body") or req.get("exc") or ""
            return f"{req.get('m')} {req.get('p')} -> {status or 'no answer'} {detail}".strip()[
                :300
            ]
    return "(no request to the Hub failed)"


def print_report(results: dict[str, TestResult], deselected: dict[str, str], verbose: bool) -> None:
    print()
    print(format_table(table_rows(results, deselected)))
    in_scope = [r for r in results.values() if r.scope == "in"]
    passed = sum(r.outcome == "passed" for r in in_scope)
    print(
        f"\nTests that reach a model or dataset repo on the local Hub (in scope): "
        f"{passed} of {len(in_scope)} passed"
    )
    bad = [r for r in in_scope if r.outcome in ("failed", "error")]
    if bad:
        print("\nIn-scope failures (first failing request to the Hub):")
        for result in sorted(bad, key=lambda r: r.nodeid):
            print(f"  {result.outcome.upper():6} {result.nodeid}")
            print(f"         {first_failing_request(result)}")
            if verbose:
                print(f"         {result.message.splitlines()[0] if result.message else ''}"[:400])
    offline_bad = [
        r for r in results.values() if r.scope == "offline" and r.outcome in ("failed", "error")
    ]
    if offline_bad:
        print(f"\nOffline tests (no request to the Hub) that failed: {len(offline_bad)}")
        for result in sorted(offline_bad, key=lambda r: r.nodeid)[:50]:
            print(f"  {result.outcome.upper():6} {result.nodeid}")


def write_json(
    path: Path, results: dict[str, TestResult], deselected: dict[str, str], url: str
) -> None:
    data = {
        "huggingface_hub": HF_HUB_VERSION,
        "hub_url": url,
        "tests": [result.__dict__ for result in sorted(results.values(), key=lambda r: r.nodeid)],
        "deselected": deselected,
    }
    path.write_text(json.dumps(data, indent=1))


# -- main --------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run huggingface_hub's test suite against a fresh local Hub.",
        epilog="Anything after `--` goes to pytest as is.",
    )
    parser.add_argument(
        "--files",
        nargs="+",
        metavar="FILE",
        help="test files (default: %(default)s)",
        default=list(DEFAULT_FILES),
    )
    parser.add_argument("-k", metavar="EXPR", help="pytest -k expression")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    parser.add_argument(
        "--shared",
        type=Path,
        default=DEFAULT_SHARED,
        help="folder with conftest.py, __init__.py, fixtures/ (default: %(default)s)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="pytest-xdist workers (default: 1)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per test (default: 120)")
    parser.add_argument(
        "--overall-timeout",
        type=float,
        default=4 * 3600,
        help="seconds for the whole pytest run (default: 4 h)",
    )
    parser.add_argument("--all", action="store_true", help="do not deselect out-of-scope tests")
    parser.add_argument("--json", type=Path, help="also write every result (and its requests) here")
    parser.add_argument("--echo", action="store_true", help="show pytest's output as it runs")
    parser.add_argument("-v", "--verbose", action="store_true", help="show failure messages too")
    parser.add_argument("pytest_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.files = [Path(f).name for f in args.files]
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def prepare_suite(args: argparse.Namespace, work: Path) -> Path:
    """The extracted sdist with its support files; exits 0 with a message if they are absent."""
    shared = args.shared.resolve()
    missing = missing_support_files(shared)
    if missing:
        print(f"SKIP: {shared} lacks {', '.join(missing)}; huggingface_hub's suite cannot run.")
        raise SystemExit(0)
    root = extract_sdist(fetch_sdist(work), work)
    copy_support_files(shared, root / "tests")
    absent = [f for f in args.files if not (root / "tests" / f).is_file()]
    if absent:
        raise SystemExit(f"Not in the {HF_HUB_VERSION} sdist's tests/: {', '.join(absent)}")
    return root


def write_config(path: Path, url: str, records: Path, run_all: bool) -> None:
    config = {
        "local_port": url.rsplit(":", 1)[1].split("/", 1)[0],
        "record_dir": str(records),
        "run_all": run_all,
        "markers": OUT_OF_SCOPE_MARKERS,
        "rules": [list(rule) for rule in OUT_OF_SCOPE],
        "seeded_files": list(SEEDED_FILES),
    }
    path.write_text(json.dumps(config, indent=1))


def run(args: argparse.Namespace, work: Path) -> int:
    root = prepare_suite(args, work)
    plugins = ensure_plugins(work)
    write_plugin(plugins)
    who = identities(read_constants(root / "tests" / "testing_constants.py"))
    data_dir = work / "hub-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    seed_hub(data_dir, who)
    hub = start_hub(data_dir, work / "hub.log")
    try:
        print(f"Local Hub at {hub.url} (data {data_dir}); renamed users: {who.renames or 'none'}")
        seed_repos(data_dir, hub.url, work / "seed-home")
        patch_constants(root / "tests" / "testing_constants.py", hub.url, who.renames)
        patch_staging_urls(root / "tests", hub.url)
        patch_pytest_env(root / "pyproject.toml", hub.url)
        records = work / "records"
        shutil.rmtree(records, ignore_errors=True)
        records.mkdir()
        paths = RunPaths(
            root, work / "junit.xml", records, work / "pytest.log", work / "hfsuite-config.json"
        )
        paths.junit.unlink(missing_ok=True)
        write_config(paths.config, hub.url, records, args.all)
        cmd = pytest_command(args, args.files, paths)
        print(f"Running pytest on {len(args.files)} files (log: {paths.log})")
        started = time.monotonic()
        rc = run_pytest(
            cmd, suite_env(hub.url, plugins, paths), paths, args.overall_timeout, args.echo
        )
        print(f"pytest exited {rc} after {time.monotonic() - started:.0f} s")
    finally:
        stop_hub(hub)
    results, deselected = collect_results(paths)
    if not results and not deselected:
        print(f"No results; the end of {paths.log}:\n{paths.log.read_text()[-3000:]}")
        return 2
    print_report(results, deselected, args.verbose)
    if args.json:
        write_json(args.json, results, deselected, hub.url)
        print(f"\nAll results: {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json:
        args.json = args.json.resolve()
    with work_directory(args.work, args.keep) as work:
        return run(args, work)


if __name__ == "__main__":
    sys.exit(main())
