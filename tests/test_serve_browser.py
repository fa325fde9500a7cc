"""The page of `lightact serve` in a real headless Chromium (Debian's package), driven through its
DevTools protocol: the file goes in through the page's own file input (``DOM.setFileInputFiles``),
the button is clicked, and the test waits until the rendered video has loaded a frame and the
timeline image has decoded.

With ``LIGHTACT_SCREENSHOTS=docs`` the screenshots of the page before and after the result are
written to ``docs/serve_page.png`` and ``docs/serve_result.png`` (the pictures in docs/serve.md).
Skipped where Chromium or the websockets package is not installed.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'lightact[serve]'")
pytest.importorskip("websockets", reason="the DevTools client needs the websockets package")

import uvicorn  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from lightact.inference.render import VideoWriter  # noqa: E402
from lightact.serve.app import create_app  # noqa: E402
from lightact.serve.limits import Limits  # noqa: E402
from lightact.serve.models import load_models  # noqa: E402

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)"),
    pytest.mark.usefixtures("one_torch_thread"),
]
REAL_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "ucf_eye_makeup.avi"
DOCS = Path(__file__).resolve().parents[1] / "docs"


class DevTools:
    """The few DevTools protocol calls the test needs, over one page's websocket."""

    def __init__(self, url: str) -> None:
        self.ws = connect(url, max_size=None, open_timeout=20)
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        message_id = next(self.ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == message_id:  # events in between are not needed
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 120.0):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {expression}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium with one blank page; yields its DevTools connection."""
    process = subprocess.Popen(
        [
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000", "--mute-audio",
            "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            "about:blank",
        ],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = None
        end = time.monotonic() + 60
        while port is None and time.monotonic() < end:
            line = process.stderr.readline()
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            port = int(found.group(1)) if found else None
            if not line and process.poll() is not None:
                break
        if port is None:
            pytest.skip("Chromium did not start its DevTools endpoint")
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=20) as response:
            page = next(t for t in json.load(response) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.call("Page.enable")
        tools.call("Runtime.enable")
        tools.call(
            "Emulation.setDeviceMetricsOverride", width=1400, height=1000, deviceScaleFactor=1, mobile=False
        )
        yield tools
        tools.close()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, save_star, save_checkpoint):
    """`lightact serve` on a free loopback port, in a thread, with the model that suits the video:
    a random one-person STAR on MediaPipe's layout for the real clip (when ../shared and MediaPipe
    are there: the render shows the skeleton), else a random PST on a synthetic clip. The PST
    (model "clips") is served in both cases: the camera test records for it."""
    import importlib.util

    clips, synthetic = _pst_and_video(tmp_path, save_checkpoint)
    if REAL_VIDEO.is_file() and importlib.util.find_spec("mediapipe") is not None:
        from lightact.data.skeleton.layouts import MEDIAPIPE33

        data = {"test_transforms": [], "clip_len": None, "max_frames": 300, "persons": 1, "fps": 30.0}
        (tmp_path / "actions").mkdir()
        work_dir = save_star(tmp_path / "actions", MEDIAPIPE33, ["apply make-up", "brush hair", "wave"], data)
        video, window = REAL_VIDEO, 60  # frames of poses at 30 fps: 2 s windows
    else:
        work_dir, video, window = clips, synthetic, 12  # 1 s at 12 fps
    models = load_models(list(dict.fromkeys([work_dir, clips])))
    port = _free_port()
    config = uvicorn.Config(create_app(models, Limits()), host="127.0.0.1", port=port, log_level="warning")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not instance.started and time.monotonic() < end:
        time.sleep(0.05)
    assert instance.started, "the server did not start"
    yield f"http://127.0.0.1:{port}", next(iter(models)), video, window
    instance.should_exit = True
    thread.join(30)


def _pst_and_video(tmp_path: Path, save_checkpoint):
    import torch

    from lightact.models.registry import create_model

    kwargs = {"num_classes": 3, "num_frames": 4, "img_size": 64, "embed_dim": 16}
    kwargs.update(depths=[2], num_heads=[2])
    torch.manual_seed(0)
    model = create_model("pst_xs", **kwargs)
    data = {"num_frames": 4, "sampling": "uniform", "resize": 160, "crop": 64}
    (tmp_path / "clips").mkdir()
    work_dir = save_checkpoint(tmp_path / "clips", model, "pst_xs", kwargs, ["run", "jump", "sit"], data)
    video = tmp_path / "moving_bar.mp4"
    with VideoWriter(video, 12.0) as writer:
        for i in range(48):
            rgb = np.full((240, 320, 3), 30, np.uint8)
            rgb[:, (i * 6) % 300 : (i * 6) % 300 + 20] = (220, 120, 40)
            writer.write(rgb)
    return work_dir, video


# The state of the result on the page, read in one go.
_RESULT = """(() => {
  const v = document.getElementById('result-video');
  const t = document.getElementById('timeline-0');
  const e = document.getElementById('error');
  return {
    error: e.hidden ? null : e.textContent,
    videoShown: !v.hidden, readyState: v.readyState, videoWidth: v.videoWidth,
    timeline: t ? (t.complete ? t.naturalWidth : 0) : 0,
    rows: document.querySelectorAll('#tables tbody tr').length,
    summary: document.getElementById('summary').textContent,
  };
})()"""


def _frame_stats(tools: DevTools) -> dict:
    """Pause the rendered video at 1 s and measure the frame's pixels (same origin: readable)."""
    return tools.evaluate("""(async () => {
      const v = document.getElementById('result-video');
      v.pause();
      await new Promise((resolve) => { v.onseeked = resolve; v.currentTime = Math.min(1, v.duration / 2); });
      const c = document.createElement('canvas');
      c.width = v.videoWidth; c.height = v.videoHeight;
      const g = c.getContext('2d');
      g.drawImage(v, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let sum = 0, sq = 0;
      for (let i = 0; i < d.length; i += 4) { sum += d[i + 1]; sq += d[i + 1] * d[i + 1]; }
      const n = d.length / 4, mean = sum / n;
      return {mean, std: Math.sqrt(sq / n - mean * mean), width: c.width, height: c.height};
    })()""")


def test_upload_through_the_page_shows_the_rendered_video_timeline_and_table(browser, server, tmp_path):
    url, model, video, window = server
    browser.call("Page.navigate", url=url + "/")
    browser.wait_for("document.querySelectorAll('#model option').length > 0", 30)
    assert browser.evaluate("document.getElementById('model').value") == model
    document = browser.call("DOM.getDocument")["root"]["nodeId"]
    node = browser.call("DOM.querySelector", nodeId=document, selector="#file")["nodeId"]
    browser.call("DOM.setFileInputFiles", files=[str(video)], nodeId=node)
    # Short windows, typed into the page's options, so that the timeline and table have several.
    browser.evaluate(
        f"document.querySelector('details').open = true; document.getElementById('window').value = {window}"
    )
    assert browser.evaluate("document.getElementById('file').files[0].name") == video.name
    before = browser.screenshot(tmp_path / "serve_page.png")
    # Record whether the progress indication ever shows while the request runs.
    browser.evaluate("""(() => {
      window.sawProgress = false;
      const box = document.getElementById('progress-box');
      new MutationObserver(() => { if (!box.hidden) window.sawProgress = true; })
        .observe(box, {attributes: true});
    })()""")
    browser.evaluate("document.getElementById('go').click()")
    state = browser.wait_for(
        f"(() => {{ const s = {_RESULT}; const ready = s.readyState >= 2 && s.timeline > 0; "
        "return s.error || ready ? s : null; })()"
    )
    assert state["error"] is None, state["error"]
    assert state["videoShown"] and state["videoWidth"] > 0 and state["timeline"] > 0
    assert state["rows"] > 1 and video.name in state["summary"]
    assert browser.evaluate("window.sawProgress") is True
    frame = _frame_stats(browser)
    assert frame["width"] > 0 and frame["std"] > 5, frame  # a picture, not a blank frame
    after = browser.screenshot(tmp_path / "serve_result.png")
    if os.environ.get("LIGHTACT_SCREENSHOTS") == "docs":
        shutil.copy(before, DOCS / "serve_page.png")
        shutil.copy(after, DOCS / "serve_result.png")


def test_the_page_shows_the_servers_one_line_error(browser, server, tmp_path):
    url = server[0]
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video at all\n")
    browser.call("Page.navigate", url=url + "/")
    browser.wait_for("document.querySelectorAll('#model option').length > 0", 30)
    document = browser.call("DOM.getDocument")["root"]["nodeId"]
    node = browser.call("DOM.querySelector", nodeId=document, selector="#file")["nodeId"]
    browser.call("DOM.setFileInputFiles", files=[str(bad)], nodeId=node)
    browser.evaluate("document.getElementById('go').click()")
    message = browser.wait_for(
        "(() => { const e = document.getElementById('error'); return e.hidden ? null : e.textContent; })()",
        30,
    )
    assert "notes.mp4" in message and "HTTP 415" in message
    assert browser.evaluate("document.getElementById('result').hidden") is True


def test_a_clip_recorded_from_the_camera_is_classified(browser, server):
    """Chromium's fake camera (a test pattern) through getUserMedia and MediaRecorder: the page
    records 3 s, uploads the WebM and shows the rendered result."""
    url = server[0]
    browser.call("Page.navigate", url=url + "/")
    browser.wait_for("document.querySelectorAll('#model option').length > 0", 30)
    browser.evaluate(
        "const m = document.getElementById('model'); m.value = 'clips'; m.dispatchEvent(new Event('change'))"
    )
    assert browser.evaluate("document.getElementById('camera').hidden") is False
    browser.evaluate("document.getElementById('record-seconds').value = '3'")
    browser.evaluate("document.getElementById('record').click()")
    browser.wait_for("document.getElementById('recorded').textContent.startsWith('recorded')", 30)
    browser.evaluate("document.getElementById('go').click()")
    state = browser.wait_for(
        f"(() => {{ const s = {_RESULT}; const ready = s.readyState >= 2 && s.timeline > 0; "
        "return s.error || ready ? s : null; })()"
    )
    assert state["error"] is None, state["error"]
    assert state["summary"].startswith("camera.webm: ") and state["videoWidth"] > 0


def test_the_api_docs_page_renders_without_a_cdn(browser, server):
    browser.call("Page.navigate", url=server[0] + "/docs")
    title = browser.wait_for(
        "(() => { const t = document.querySelector('.swagger-ui .info .title'); return t && t.textContent; })"
        "()",
        30,
    )
    assert title.startswith("lightact")
    assert browser.wait_for("document.querySelectorAll('.opblock-summary-path').length", 30) >= 4
