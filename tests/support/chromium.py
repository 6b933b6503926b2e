"""A page in headless Chromium driven over the DevTools protocol through a pipe (`--remote-debugging-pipe`:
no port, standard library only): open a URL, wait for text, click, screenshot. For pages that need a
click before they show what a test checks (MLflow's runs table shows child runs once their parent row is
expanded); `--dump-dom` is enough for the others (tests/orchestrator/report/test_report_browser.py)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

from tests.orchestrator.report.test_report_browser import find_chromium


class Page:
    """One tab of a fresh headless Chromium (throwaway profile); use as a context manager."""

    def __init__(self, profile: Path, width: int = 1600, height: int = 1000):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser reads commands on fd 3 and writes replies on fd 4
        command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--hide-scrollbars", f"--window-size={width},{height}", f"--user-data-dir={profile}",
                   "--remote-debugging-pipe", "about:blank"]

        def wire() -> None:   # in the child: via fds no pipe end can be, so neither is overwritten early
            os.dup2(to_browser_r, 1000)
            os.dup2(from_browser_w, 1001)
            os.dup2(1000, 3)
            os.dup2(1001, 4)

        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=wire)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next_id, self.session = b"", 0, None

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    # ---- the protocol ------------------------------------------------------------------------------
    def send(self, method: str, timeout_s: float = 60, **params) -> dict:
        """One DevTools command; its result (events in between are dropped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    # ---- what tests do -------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def text(self) -> str:
        return self.evaluate("document.title + '\\n' + (document.body ? document.body.innerText : '')") or ""

    def wait_for(self, predicate, timeout_s: float = 90, every_s: float = 0.5) -> str:
        """Poll the page's text until `predicate(text)`; returns that text (TimeoutError with the last one)."""
        deadline = time.monotonic() + timeout_s
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if predicate(text):
                return text
            time.sleep(every_s)
        raise TimeoutError(f"the page never showed what was waited for; it shows:\n{text[:3000]}")

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path
