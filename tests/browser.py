"""Headless Chromium driven over the DevTools protocol on a pipe (stdlib only).

Loads a page, collects every console message, uncaught exception and browser log error
(failed requests and Content-Security-Policy violations land there), returns the rendered
DOM and a full-page screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageLoad:
    html: str
    png: bytes
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    probed: Any = None  # what the ``probe`` expression evaluated to


class Browser:
    def __init__(self) -> None:
        binary = chromium()
        assert binary, "chromium is not installed"
        self.profile = tempfile.mkdtemp(prefix="hubtool-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()

        def wire() -> None:  # the protocol's fds: 3 reads commands, 4 writes answers
            a, b = os.dup(cmd_r), os.dup(res_w)  # dup2(3, 3) would keep close-on-exec
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(cmd_r)
        os.close(res_w)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._answers: dict[int, dict[str, Any]] = {}
        self._ready = threading.Condition()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._res_r, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    if "id" in message:
                        with self._ready:
                            self._answers[message["id"]] = message
                            self._ready.notify_all()
                    else:
                        self.events.put(message)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        with self._ready:
            assert self._ready.wait_for(lambda: ident in self._answers, timeout=60), method
            answer = self._answers.pop(ident)
        assert "error" not in answer, answer
        return answer.get("result", {})

    def load(self, url: str, width: int = 1280, probe: str | None = None) -> PageLoad:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable", session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.send("Page.navigate", session, url=url)
        page = PageLoad("", b"")
        self._collect(page, session, until="Page.loadEventFired")
        self._collect(page, session, until=None, seconds=0.5)  # late messages
        html = self.send(
            "Runtime.evaluate",
            session,
            expression="document.documentElement.outerHTML",
            returnByValue=True,
        )
        page.html = html["result"]["value"]
        if probe is not None:
            found = self.send("Runtime.evaluate", session, expression=probe, returnByValue=True)
            page.probed = found["result"].get("value")
        shot = self.send(
            "Page.captureScreenshot", session, format="png", captureBeyondViewport=True
        )
        page.png = base64.b64decode(shot["data"])
        return page

    def _collect(
        self, page: PageLoad, session: str, until: str | None, seconds: float = 30
    ) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event.get("sessionId") != session:
                continue
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                page.console.append(f"{params['type']}: {text}")
                if params["type"] in ("error", "assert", "warning"):
                    page.errors.append(f"console {params['type']}: {text}")
            elif method == "Runtime.exceptionThrown":
                page.errors.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                entry = params["entry"]
                page.errors.append(f"log {entry['level']}: {entry['text']} {entry.get('url', '')}")
            elif until and method == until:
                return

    def close(self) -> None:
        with contextlib.suppress(AssertionError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._cmd_w)
        shutil.rmtree(self.profile, ignore_errors=True)
