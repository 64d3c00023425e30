"""Open a page in headless Chromium over the DevTools protocol (``--remote-debugging-pipe``), no extra packages.

``inspect_page(path)`` loads ``file://path``, waits for the load event, and returns the console errors, uncaught
exceptions, requests that left the file (network), and the rendered size of every ``img.figure``.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_FLAGS", "PageReport", "find_chromium", "inspect_page"]

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--mute-audio", "--remote-debugging-pipe")

_TRAMPOLINE = """
import fcntl, os, sys
r, w = (fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3])
os.dup2(r, 3)
os.dup2(w, 4)
for fd in {r, w, int(sys.argv[1]), int(sys.argv[2])} - {3, 4}:
    os.close(fd)
os.set_inheritable(3, True)
os.set_inheritable(4, True)
os.execv(sys.argv[3], sys.argv[3:])
"""

_FIGURES_JS = """JSON.stringify(Array.from(document.querySelectorAll('img.figure')).map(function(img){
  var r = img.getBoundingClientRect();
  return {id: img.id, complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
          width: r.width, height: r.height, rendered: img.getAttribute('data-rendered')};
}).concat([{body_errors: document.body.getAttribute('data-errors')}]))"""


def find_chromium() -> str | None:
    """The Chromium binary: ``$ACCESSBENCH_CHROMIUM``, else chromium / chromium-browser / google-chrome on PATH."""
    env = os.environ.get("ACCESSBENCH_CHROMIUM")
    if env:
        return env if Path(env).is_file() else shutil.which(env)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageReport:
    """What the browser saw while loading the page."""

    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    in_page_errors: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        """Every error of any kind, for one assertion message."""
        return [*self.console_errors, *self.exceptions, *self.log_errors, *self.in_page_errors]


class _Pipe:
    """NUL-delimited JSON messages to and from Chromium's fds 3 (in) and 4 (out)."""

    def __init__(self, binary: str, profile: str) -> None:
        to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, from_chrome_w = os.pipe()
        # the protocol lives on fds 3 (commands in) and 4 (replies out); a tiny Python trampoline moves the pipe
        # ends there and execs Chromium (no preexec_fn, which is unsafe with threads)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _TRAMPOLINE, str(to_chrome_r), str(from_chrome_w), binary, *CHROMIUM_FLAGS,
             f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome_w, json.dumps(msg).encode() + b"\0")
        return self._next_id

    def receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_chrome_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_chrome_r, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             deadline: float) -> dict[str, Any]:
        msg_id = self.send(method, params, session)
        while True:
            msg = self.receive(deadline)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            os.close(self._to_chrome_w)
            os.close(self._from_chrome_r)


def _text(args: list[dict[str, Any]]) -> str:
    return " ".join(str(a.get("value", a.get("description", a.get("type")))) for a in args)


def inspect_page(path: Path, *, binary: str, timeout_s: float = 60.0) -> PageReport:
    """Load ``path`` from ``file://`` in headless Chromium and report what happened (see ``PageReport``)."""
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="accessbench-chromium-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                deadline=deadline)["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                pipe.call(f"{domain}.enable", session=session, deadline=deadline)
            pipe.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session, deadline=deadline)
            while not any(e.get("method") == "Page.loadEventFired" for e in pipe.events):
                pipe.events.append(pipe.receive(deadline))
            result = pipe.call("Runtime.evaluate", {"expression": _FIGURES_JS, "returnByValue": True},
                               session=session, deadline=deadline)
            figures = json.loads(result["result"]["value"])
        finally:
            pipe.close()
    report = PageReport(figures=figures[:-1])
    body_errors = figures[-1].get("body_errors")
    report.in_page_errors = json.loads(body_errors) if body_errors else ["the page's load handler did not run"]
    for event in pipe.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            report.console_errors.append(_text(params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            report.log_errors.append(str(params["entry"].get("text")))
        elif method == "Network.requestWillBeSent":
            url = str(params.get("request", {}).get("url", ""))
            if not url.startswith(("file:", "data:", "about:")):
                report.external_requests.append(url)
    return report
