"""`python -m hubtool ...` and `python -c ...` for tests, forked from a warm interpreter.

Each hubtool command in the tests started a fresh Python that imported torch (1.7 s) and
tore it down at exit (0.8 s), for hundreds of runs. ``run`` has subprocess.run's signature
for those commands and forks them from a zygote, one per test worker, that has imported torch
and a few other libraries that read nothing a test sets and start no thread (huggingface_hub,
transformers and datasets read HF_HOME and the rest at import: every run imports them
afresh). The child is a separate process with the test's environment, working directory,
argv and standard streams; it runs the module or code as `python -m`/`-c` would and exits as
the interpreter does (non-daemon threads joined, atexit handlers run, streams flushed) but
without the module teardown. A command whose environment differs from the zygote's in
anything read at import (threads, allocator, library paths, Python's own settings), that is
not a Python command, or that asks for more than subprocess.run's usual arguments, runs as a
plain subprocess; so does every command when HUBTOOL_TESTS_NO_FORK=1.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# read when torch (and its OpenMP/BLAS libraries, and Python itself) start: a child whose
# environment differs in one of these starts from scratch
IMPORT_TIME = ("OMP_", "MKL_", "KMP_", "GOMP_", "TORCH", "PYTORCH", "LD_", "PYTHON", "MALLOC_")
IMPORT_TIME += ("CUDA", "NVIDIA", "OPENBLAS", "DNNL", "ONEDNN", "TQDM", "SYMPY", "TOKENIZERS")

ZYGOTE = r"""
import json, os, select, socket, sys
# what the children import again and again; nothing here reads HF_* at import, and nothing
# starts a thread (pyarrow, and pandas with it, would: they stay out)
import numpy, regex, requests, safetensors, sympy, tokenizers, torch, tqdm, yaml, jinja2  # noqa

control = socket.socket(fileno=int(sys.argv[1]))
waiting = {}  # child pid -> the socket its exit status goes to


def reap():
    while waiting:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        reply = waiting.pop(pid, None)
        if reply is not None:
            try:
                reply.sendall(b"%d\n" % os.waitstatus_to_exitcode(status))
            except OSError:
                pass
            reply.close()


def serve():
    while True:
        ready, _, _ = select.select([control], [], [], 0.02)
        reap()
        if not ready:
            continue
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
        if not message:
            os._exit(0)
        request = json.loads(message)
        reply = socket.socket(fileno=fds[3])
        pid = os.fork()
        if pid == 0:
            control.close()
            reply.close()
            for target, fd in enumerate(fds[:3]):
                os.dup2(fd, target)
                os.close(fd)
            return request
        for fd in fds[:3]:
            os.close(fd)
        waiting[pid] = reply
        reply.sendall(b"%d\n" % pid)


def child(request):
    numpy.random.seed()  # a fresh process draws its own (random reseeds itself at fork)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    argv = request["argv"]
    if argv[0] == "-m":
        import runpy
        sys.argv = [argv[1], *argv[2:]]
        sys.path[0] = os.getcwd()
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        import types
        sys.argv = ["-c", *argv[2:]]
        sys.path[0] = ""
        main = sys.modules["__main__"] = types.ModuleType("__main__")
        exec(compile(argv[1], "<string>", "exec"), main.__dict__)


def finish(code):
    # exit as the interpreter would (threads joined, atexit handlers run, streams flushed)
    # but without tearing down every module torch brought: that was 0.8 s a run
    import atexit, threading
    threading._shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code)


def exit_code(exc):
    code = exc.code
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


request = serve()
del serve, reap, control, waiting
try:
    child(request)
except SystemExit as exc:
    finish(exit_code(exc))
except BaseException:
    import traceback
    traceback.print_exc()
    finish(1)
finish(0)
"""


class Child:
    def __init__(self, pid: int, sock: socket.socket, reader: Any) -> None:
        self.pid, self.sock, self.reader = pid, sock, reader

    def wait(self, timeout: float | None, cmd: list[str]) -> int:
        """The exit code (negative: the signal); killed and TimeoutExpired past ``timeout``."""
        with self.sock, self.reader:
            self.sock.settimeout(timeout)
            try:
                line = self.reader.readline()
            except TimeoutError:
                os.kill(self.pid, 9)
                raise subprocess.TimeoutExpired(cmd, timeout or 0) from None
        if not line:
            raise RuntimeError(f"the test zygote lost {cmd[:4]} (pid {self.pid})")
        return int(line)


class Zygote:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.control = ours
        self.env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs.close()

    def fits(self, env: dict[str, str]) -> bool:
        keys = {k for k in {*env, *self.env} if k.startswith(IMPORT_TIME)}
        return self.proc.poll() is None and all(env.get(k) == self.env.get(k) for k in keys)

    def start(self, argv: list[str], cwd: str, env: dict[str, str], streams: list[int]) -> Child:
        """Fork ``argv`` (OSError where the zygote cannot take it)."""
        ours, theirs = socket.socketpair()
        request = json.dumps({"argv": argv, "cwd": cwd, "env": env}).encode()
        try:
            socket.send_fds(self.control, [request], [*streams, theirs.fileno()])
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(60)
        reader = ours.makefile("rb")
        line = reader.readline()
        if not line:
            ours.close()
            raise OSError("the test zygote did not fork")
        return Child(int(line), ours, reader)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.control.send(b"")
        self.control.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_zygote: Zygote | None = None


def zygote() -> Zygote:
    global _zygote
    if _zygote is None or _zygote.proc.poll() is not None:
        _zygote = Zygote()
        atexit.register(_zygote.close)
    return _zygote


def _forkable(cmd: Any, env: dict[str, str]) -> bool:
    return (
        os.environ.get("HUBTOOL_TESTS_NO_FORK") != "1"
        and isinstance(cmd, list)
        and len(cmd) >= 3
        and cmd[0] == sys.executable
        and cmd[1] in ("-m", "-c")
        and zygote().fits(env)
    )


def run(
    cmd: list[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    input: str | None = None,
    capture_output: bool = False,
    text: bool = False,
    check: bool = False,
    **rest: Any,
) -> subprocess.CompletedProcess[Any]:
    """subprocess.run(cmd, ...) for a Python command, forked from the warm zygote."""
    full = dict(os.environ if env is None else env)
    proc = None
    if not rest and _forkable(cmd, full):
        where = str(cwd or os.getcwd())
        proc = _forked(cmd, where, full, timeout, input, capture_output, text)
    if proc is None:
        kwargs = {"cwd": cwd, "env": env, "timeout": timeout, "input": input, "text": text}
        return subprocess.run(cmd, capture_output=capture_output, check=check, **kwargs, **rest)
    if check:
        proc.check_returncode()
    return proc


def _forked(
    cmd: list[str],
    cwd: str,
    env: dict[str, str],
    timeout: float | None,
    input: str | None,
    capture: bool,
    text: bool,
) -> subprocess.CompletedProcess[Any] | None:
    """``cmd`` run by the zygote; None where the zygote cannot take it (too large a request,
    or the zygote is gone)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with tempfile.TemporaryFile() as stdin:
            if input is not None:
                stdin.write(input.encode() if isinstance(input, str) else input)
                stdin.seek(0)
            streams = [stdin.fileno(), *([out.fileno(), err.fileno()] if capture else [1, 2])]
            try:
                child = zygote().start(cmd[1:], cwd, env, streams)
            except OSError:
                return None
        code = child.wait(timeout, cmd)
        stdout, stderr = (_read(f, text) for f in (out, err)) if capture else (None, None)
    return subprocess.CompletedProcess(cmd, code, stdout, stderr)


def _read(handle: Any, text: bool) -> Any:
    handle.seek(0)
    data = handle.read()
    return data.decode(errors="replace") if text else data
