"""A headless Chromium driven over the DevTools protocol, for tests that look at a web page.

WebGL renders on the CPU through SwiftShader (no GPU, no display). Debian's package: `apt-get
install chromium` (scripts/setup.sh offers it). The DevTools websocket is spoken with the
`websockets` package (a dependency of viser).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "apt-get install -y chromium   (or: bash scripts/setup.sh --with-browser)"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class HeadlessChromium:
    """One page of a headless Chromium: `open(url)`, `screenshot(path)`, `close()`."""

    def __init__(self, width: int = 960, height: int = 600, start_timeout: float = 60.0):
        exe = chromium_path()
        if exe is None:
            raise FileNotFoundError(f"no chromium found; install it: {INSTALL_HINT}")
        self.profile = tempfile.mkdtemp(prefix="refine-dp-chromium-")
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu-sandbox", "--no-first-run",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                f"--window-size={width},{height}", f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + start_timeout
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{exe} did not open its DevTools port within {start_timeout} s")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        from websockets.sync.client import connect

        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
        self._id, self.session = 0, None
        self.size = (width, height)

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        width, height = self.size
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True).get("result", {}).get("value")

    def dismiss_notifications(self) -> int:
        """Close the page's pop-up notices (viser warns that WebGL runs in software); returns how many."""
        return self.evaluate("(() => { const b = document.querySelectorAll("
                             "'.mantine-Notification-closeButton, [class*=Notification] button');"
                             " b.forEach(x => x.click()); return b.length; })()") or 0

    def screenshot(self, path: Path):
        """PNG of the page as it is now -> path; returns the image (H, W, 3 uint8)."""
        import base64

        import imageio.v3 as iio

        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        Path(path).write_bytes(data)
        return iio.imread(path)[..., :3]

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
