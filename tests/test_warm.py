"""The tests' forked commands (tests/warm.py) behave as the fresh processes they replace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import warm

SHOW = (
    "import os, sys, torch, threading\n"
    "go = threading.Event()\n"
    "threading.Thread(target=lambda: go.wait() and print('thread done')).start()\n"
    "print(sys.argv[1:], os.getcwd(), os.environ.get('HUBTOOL_PROBE'), os.getpid() != {parent})\n"
    "print(torch.get_num_threads(), sys.stdin.read().upper())\n"
    "print('to stderr', file=sys.stderr)\n"
    "go.set()\n"  # the thread prints after this, while the interpreter waits for it at exit
    "sys.exit(int(sys.argv[1]))\n"
)


def both(cmd: list[str], **kwargs) -> list[subprocess.CompletedProcess[str]]:
    return [f(cmd, capture_output=True, text=True, **kwargs) for f in (warm.run, subprocess.run)]


def test_a_forked_command_sees_what_a_fresh_one_does(tmp_path):
    env = {**os.environ, "HUBTOOL_PROBE": "yes"}
    code = SHOW.format(parent=os.getpid())
    forked, fresh = both(
        [sys.executable, "-c", code, "3", "x"], cwd=tmp_path, env=env, input="typed", timeout=120
    )
    assert forked.returncode == fresh.returncode == 3
    assert forked.stdout == fresh.stdout and forked.stderr == fresh.stderr == "to stderr\n"
    assert f"['3', 'x'] {tmp_path} yes True" in forked.stdout and "TYPED" in forked.stdout
    assert "thread done" in forked.stdout


def test_errors_and_the_module_form_match(tmp_path):
    forked, fresh = both([sys.executable, "-c", "raise ValueError('boom')"], timeout=120)
    assert forked.returncode == fresh.returncode == 1
    assert forked.stderr.splitlines()[-1] == fresh.stderr.splitlines()[-1] == "ValueError: boom"
    forked, fresh = both([sys.executable, "-m", "hubtool", "--version"], cwd=tmp_path, timeout=120)
    assert forked.returncode == fresh.returncode == 0 and forked.stdout == fresh.stdout


def parent_of(env: dict[str, str]) -> int:
    code = "import os; print(os.getppid())"
    proc = warm.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return int(proc.stdout)


@pytest.mark.skipif(os.environ.get("HUBTOOL_TESTS_NO_FORK") == "1", reason="forking is off")
def test_a_command_is_forked_by_the_zygote_unless_its_thread_setting_differs():
    assert parent_of(dict(os.environ)) == warm.zygote().proc.pid
    other = "2" if os.environ.get("OMP_NUM_THREADS") == "1" else "1"
    env = {**os.environ, "OMP_NUM_THREADS": other, "MKL_NUM_THREADS": other}
    assert parent_of(env) == os.getpid()  # started afresh, by this process
    code = "import torch; print(torch.get_num_threads())"
    proc = warm.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.stdout.strip() == other or (os.cpu_count() or 1) < int(other)


def test_a_forked_command_past_its_timeout_is_killed():
    with pytest.raises(subprocess.TimeoutExpired):
        warm.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
