"""What a new user meets in the first hour: the debug switch, login messages, commands that run
as printed, git-lfs pointers, full ids in tables, a clean progress bar, and settings checked
before training starts."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import client_env
from tests.test_finetune import base_args, run
from tests.test_search import load_hub, row

VENV_BIN = Path(sys.executable).parent
BARE_PATH = "/usr/local/bin:/usr/bin:/bin"  # hubtool is not on it (unless installed there)


def in_terminal(argv: list[str], env: dict[str, str], cwd: Path, columns: int = 200) -> str:
    """Run a command on a pseudo-terminal of the given width; returns what it drew."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**env, "COLUMNS": str(columns)}
    proc = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, env=env, cwd=cwd
    )
    os.close(follower)
    chunks, deadline = [], time.time() + 240
    while time.time() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


# -- the debug switch ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value,traceback", [("0", False), ("false", False), ("", False), ("1", True), ("yes", True)]
)
def test_hubtool_debug_is_one_switch(tmp_path, value, traceback):
    env = {**os.environ, "HUBTOOL_DEBUG": value}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubtool",
            "hub",
            "token",
            "create",
            "ghost",
            "--data-dir",
            str(tmp_path / "hub"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 5 and "No user named 'ghost'" in proc.stderr
    assert ("Traceback" in proc.stderr) is traceback, proc.stderr


# -- no token at all ----------------------------------------------------------------------------
def test_push_without_any_token_says_none_was_found(hub, checkpoint, datasets_dir, tmp_path):
    run(base_args(checkpoint, datasets_dir / "cls", "r", "--max-steps", "2"), tmp_path)
    proc = run(["push", "r", "--repo-id", "nobody/model"], tmp_path, check=False, hub_url=hub.url)
    assert proc.returncode == 4, proc.stderr
    assert "none was found" in proc.stderr and "refused the credentials" not in proc.stderr
    for way in ("hf auth login", "HF_TOKEN", "hubtool hub token create"):
        assert way in proc.stderr


def test_finetune_push_without_a_token_stops_before_training(
    hub, checkpoint, datasets_dir, tmp_path
):
    args = base_args(checkpoint, datasets_dir / "cls", "r", "--push", "--hub-model-id", "a/b")
    proc = run(args, tmp_path, check=False, hub_url=hub.url)
    assert proc.returncode == 4 and "none was found" in proc.stderr, proc.stderr
    assert not (tmp_path / "r" / "train_log.jsonl").exists()


# -- commands that work as printed --------------------------------------------------------------
def test_printed_commands_run_as_printed_without_hubtool_on_path(tmp_path):
    """The demo's last hint and the hints of errors name hubtool so that they run from a
    shell whose PATH does not hold the venv (after `make demo`)."""
    script = VENV_BIN / "hubtool"
    env = {**os.environ, "PATH": BARE_PATH}
    code = (
        "from pathlib import Path\nfrom hubtool.demo.run import _where_to_look\n"
        f"_where_to_look('http://127.0.0.1:1', Path({str(tmp_path)!r}), False, print)"
    )
    out = subprocess.run(
        [str(script.with_name("python")), "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if "hub serve" in x)
    command = shlex.split(line.split("start the Hub again:", 1)[1])
    assert command[0] != "hubtool"
    shown = subprocess.run(
        [*command, "--help"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and "--data-dir" in shown.stdout, shown.stderr
    error = subprocess.run(
        [str(script), "card", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert error.returncode != 0 and "`hubtool " not in error.stderr, error.stderr


def test_finetune_prints_the_run_directory_as_an_absolute_path(checkpoint, datasets_dir, tmp_path):
    proc = run(base_args(checkpoint, datasets_dir / "cls", "rel", "--max-steps", "2"), tmp_path)
    assert proc.stdout.strip() == str((tmp_path / "rel").resolve())


# -- git-lfs pointers ---------------------------------------------------------------------------
def test_a_clone_without_git_lfs_is_named(checkpoint, datasets_dir, tmp_path):
    import shutil

    clone = tmp_path / "clone"
    shutil.copytree(checkpoint, clone)
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize 123456\n"
    (clone / "model.safetensors").write_text(pointer.format("ab" * 32))
    for command in (
        base_args(clone, datasets_dir / "cls", "x"),
        ["evaluate", str(clone), "--dataset", str(datasets_dir / "cls")],
    ):
        proc = run(command, tmp_path, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "git-lfs pointer" in proc.stderr and "git lfs pull" in proc.stderr
        assert "model.safetensors" in proc.stderr and "Traceback" not in proc.stderr


# -- tables use the terminal's width and never cut ids -------------------------------------------
LONG_ID = "sentence-transformers/paraphrase-multilingual-mpnet-base-v2-french-mlm"


@pytest.fixture(scope="module")
def long_hub(tmp_path_factory):
    arch = {"architectures": ["BertForMaskedLM"], "model_type": "bert"}
    hub = load_hub(tmp_path_factory, [row(LONG_ID, ["fr", "fill-mask"], "fill-mask", 10, 1, arch)])
    yield hub
    hub.__exit__()


def test_search_never_cuts_the_id(long_hub, tmp_path):
    args = [sys.executable, "-m", "hubtool", "search", "--task", "fill-mask", "--lang", "fr"]
    env = client_env(long_hub.url, tmp_path / "home")
    piped = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and LONG_ID in piped.stdout, piped.stderr
    wide = in_terminal(args, env, tmp_path, columns=200)
    assert LONG_ID in wide and "…" not in wide.split(LONG_ID, 1)[1].splitlines()[1]


def test_info_shows_whole_evaluation_values_at_the_terminal_width(hub, alice, repo_id, tmp_path):
    card = (
        "---\nmodel-index:\n- name: m\n  results:\n  - task: {type: text-classification}\n"
        "    dataset: {type: acme/election-tweets-with-a-long-name, name: Election tweets 2016"
        ", split: validation}\n    metrics:\n    - {type: accuracy, name: Validation accuracy"
        ", value: 0.8791}\n    - {type: f1, name: Validation macro F1, value: 0.8779}\n---\n"
    )
    hub.api(alice).create_repo(repo_id)
    hub.api(alice).upload_file(
        path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id
    )
    args = [sys.executable, "-m", "hubtool", "info", repo_id]
    env = client_env(hub.url, tmp_path / "home", alice.token)
    for text in (
        subprocess.run(args, env=env, capture_output=True, text=True, timeout=120).stdout,
        in_terminal(args, env, tmp_path, columns=200),
    ):
        assert "Validation accuracy = 0.8791" in text and "Validation macro F1 = 0.8779" in text
    wide = in_terminal(args, env, tmp_path, columns=200)
    assert "Election tweets 2016 [validation])" in wide


# -- a clean progress bar -----------------------------------------------------------------------
def test_progress_bar_output_has_no_noise(checkpoint, datasets_dir, tmp_path):
    args = base_args(
        checkpoint,
        datasets_dir / "corpus.txt",
        "mlm",
        "--task",
        "fill-mask",
        "--max-steps",
        "8",
        "--eval-every",
        "4",
        "--max-length",
        "32",
    )
    args.remove("--no-progress")
    drawn = in_terminal(
        [sys.executable, "-m", "hubtool", *args],
        client_env("http://127.0.0.1:9", tmp_path / "home"),
        tmp_path,
    )
    assert "Removed shared tensor" not in drawn and "[RANK" not in drawn
    segments = [s for s in drawn.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    evals = [s for s in segments if "perplexity " in s and "step " in s]
    assert len(evals) == 2 and all(s.startswith("step ") for s in evals), evals
    assert all(s.startswith("Warning: ") for s in segments if "Warning:" in s)
    assert "\n\n\n" not in drawn.replace("\r\n", "\n")


# -- settings checked before the first step -----------------------------------------------------
@pytest.mark.parametrize(
    "extra,config,code,needle",
    [
        (["--push", "--hub-model-id", "not a repo"], None, 2, "is not a Hub repo id"),
        (["--push", "--hub-model-id", "a/../b"], None, 2, "is not a Hub repo id"),
        ([], {"card": {"licence": "mit"}}, 2, "Unknown card setting 'licence'"),
        ([], {"card": {"language": ["klingon"]}}, 2, "Unknown language 'klingon'"),
        ([], {"card": {"bias_probe": "missing.yaml"}}, 2, "no such file"),
        ([], {"push": {"repo_id": "x/y", "strategy": "often"}}, 2, "push strategy"),
        ([], {"push": {"repo": "x/y"}}, 2, "Unknown push setting 'repo'"),
    ],
)
def test_bad_push_and_card_settings_fail_before_training(
    checkpoint, datasets_dir, tmp_path, hub, extra, config, code, needle
):
    args = base_args(checkpoint, datasets_dir / "cls", "r", *extra)
    if config is not None:
        (tmp_path / "hubtool.yaml").write_text(json.dumps(config))
        args += ["--config", "hubtool.yaml"]
    proc = run(args, tmp_path, check=False, hub_url=hub.url)
    assert proc.returncode == code and needle in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "train_log.jsonl").exists()


def test_a_token_that_cannot_write_there_fails_before_training(
    hub, alice, checkpoint, datasets_dir, tmp_path
):
    for repo, token, needle in (
        (f"{alice.name}/m", alice.read_token, "read-only"),
        ("someone-else/m", alice.token, "cannot write to the namespace 'someone-else'"),
    ):
        args = base_args(checkpoint, datasets_dir / "cls", "r", "--push", "--hub-model-id", repo)
        proc = run(args, tmp_path, env_extra={"HF_TOKEN": token}, check=False, hub_url=hub.url)
        assert proc.returncode == 4 and needle in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "r" / "train_log.jsonl").exists()
