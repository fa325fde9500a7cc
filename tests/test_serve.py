"""`lightact serve`: the HTTP API and its limits, through FastAPI's TestClient (lightact.serve).

Small random models of three modalities (STAR on skeletons, PST on clips, ViT on images) are
served together; every answer is checked against the library on the same file, and every kind of
bad upload against the one-line message the CLI gives for it.
"""

from __future__ import annotations

import io
import json
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'lightact[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import lightact.serve as serve_package  # noqa: E402
from lightact.cli import app as cli_app  # noqa: E402
from lightact.data.skeleton.layouts import NTU25  # noqa: E402
from lightact.inference import predict_path  # noqa: E402
from lightact.inference.render import VideoWriter  # noqa: E402
from lightact.serve import app as serve_app  # noqa: E402
from lightact.serve.app import create_app  # noqa: E402
from lightact.serve.limits import Limits, UnsupportedFile, WorkerPool, sniff  # noqa: E402
from lightact.serve.models import load_models  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SKELETON_DATA = {"test_transforms": ["center"], "clip_len": None, "max_frames": 300}
VIT_KWARGS = {"num_classes": 3, "img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}


# ---------------------------------------------------------------------------------------------------
# models and files


@pytest.fixture(scope="module")
def work_dirs(tmp_path_factory, save_star, save_checkpoint) -> dict[str, Path]:
    """A STAR (NTU-25), a PST (4 frames of 64 px) and a ViT (32 px), random, each in its work dir."""
    import timm

    from lightact.models.registry import create_model

    root = tmp_path_factory.mktemp("served")
    star = save_star(_mkdir(root / "star"), NTU25, ["wave", "clap", "kick"], SKELETON_DATA, dim=16)
    kwargs = {"num_classes": 3, "num_frames": 4, "img_size": 64, "embed_dim": 16}
    kwargs.update(depths=[2], num_heads=[2])
    torch.manual_seed(0)
    pst = create_model("pst_xs", **kwargs)
    clip_data = {"num_frames": 4, "sampling": "uniform", "resize": None, "crop": 64}
    pst_dir = save_checkpoint(_mkdir(root / "pst"), pst, "pst_xs", kwargs, ["run", "jump", "sit"], clip_data)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, **VIT_KWARGS).eval()
    image_data = {"img_size": 32, "crop_pct": 0.875, "num_crops": 1}
    vit_dir = save_checkpoint(
        _mkdir(root / "vit"), vit, "timm/vit_tiny_patch16_224", VIT_KWARGS, ["x", "y", "z"], image_data
    )
    return {"star": star, "pst": pst_dir, "vit": vit_dir}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def models(work_dirs):
    return load_models(list(work_dirs.values()))


@pytest.fixture
def client(models):
    with TestClient(create_app(models, Limits(workers=1, queue=2, keep_s=60))) as c:
        yield c


def _server(client):
    return client.app.state.server


def npy_bytes(frames: int = 40, seed: int = 0) -> bytes:
    keypoint = np.random.default_rng(seed).normal(size=(1, frames, 25, 3)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, keypoint)
    return buffer.getvalue()


def pickle_bytes() -> bytes:
    rng = np.random.default_rng(1)
    keypoints = [rng.normal(size=(1, 30, 25, 3)).astype(np.float32) for _ in range(2)]
    annotations = [{"frame_dir": f"s{i}", "keypoint": k} for i, k in enumerate(keypoints)]
    return pickle.dumps({"annotations": annotations}, protocol=4)


def video_bytes(tmp_path: Path, frames: int = 24, size: int = 64, fps: float = 12.0) -> bytes:
    path = tmp_path / "made.mp4"
    with VideoWriter(path, fps) as writer:
        for i in range(frames):
            rgb = np.zeros((size, size, 3), np.uint8)
            rgb[:, (i * 2) % size : (i * 2) % size + 8] = (200, 80, 30)
            writer.write(rgb)
    return path.read_bytes()


def png_bytes(seed: int = 0) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def post(client, model: str, name: str, data: bytes, **fields):
    form = {"model": model, **{k: str(v) for k, v in fields.items()}}
    return client.post("/predict", data=form, files={"file": (name, data, "application/octet-stream")})


def cli_message(tmp_path: Path, work_dir: Path, name: str, data: bytes) -> str:
    """What `lightact predict` prints for this file saved as ``name``, with the path as the name."""
    (tmp_path / "cli").mkdir(exist_ok=True)
    path = tmp_path / "cli" / name
    path.write_bytes(data)
    with pytest.raises((ValueError, OSError, pickle.UnpicklingError)) as err:
        predict_path(work_dir, path)
    return str(err.value).replace(str(path), name)


def request_folders(client) -> list[Path]:
    return sorted(_server(client).root.iterdir())


# ---------------------------------------------------------------------------------------------------
# the page, the listing, the schema


def test_models_health_page_and_schema(client):
    listing = client.get("/models").json()
    by_name = {m["name"]: m for m in listing["models"]}
    assert by_name["star"]["modality"] == "skeleton" and by_name["star"]["classes"] == 3
    assert "skeleton" in by_name["star"]["kinds"]
    assert by_name["pst"]["kinds"] == ["video"] and by_name["vit"]["kinds"] == ["image"]
    assert by_name["pst"]["class_names"] == ["run", "jump", "sit"]
    assert listing["limits"]["workers"] == 1 and listing["limits"]["queue"] == 2
    assert client.get("/health").json() == {"status": "ok", "models": 3, "busy": 0, "capacity": 3}
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "/static/app.js" in page.text
    assert "http" not in page.text.replace('href="/docs"', "")  # nothing fetched from elsewhere
    assert client.get("/static/app.js").status_code == 200
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body
    assert {"/models", "/health", "/predict"} <= set(schema["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text
    assert "/static-docs/swagger-ui-bundle.js" in docs.text
    assert client.get("/static-docs/swagger-ui-bundle.js").status_code == 200


# ---------------------------------------------------------------------------------------------------
# a good file of each kind


def test_skeleton_array_matches_the_library_and_its_timeline_is_served(client, work_dirs, tmp_path):
    data = npy_bytes()
    response = post(client, "star", "walk.npy", data, topk=2, window=20, stride=10)
    assert response.status_code == 200, response.text
    result = response.json()
    (tmp_path / "walk.npy").write_bytes(data)
    [expected] = predict_path(work_dirs["star"], tmp_path / "walk.npy", window=20, stride=10, topk=2)
    [got] = result["predictions"]
    assert got["source"] == "walk.npy" and result["kind"] == "skeleton" and result["format"] == "npy"
    assert [(w["start_frame"], w["end_frame"]) for w in got["windows"]] == [(0, 20), (10, 30), (20, 40)]
    assert all(len(w["topk"]) == 2 for w in got["windows"])
    np.testing.assert_allclose(got["probabilities"], expected.probabilities, atol=1e-6)
    assert result["render_url"] is None and "no video" in result["render_note"]
    timeline = client.get(got["timeline_url"])
    assert timeline.status_code == 200 and timeline.content.startswith(b"\x89PNG")
    assert timeline.headers["content-type"] == "image/png"
    # The upload is deleted as soon as it is classified; only the timeline stays.
    [folder] = request_folders(client)
    assert [p.name for p in folder.iterdir()] == ["timeline_0.png"]


def test_skeleton_pickle_gives_one_prediction_per_annotation(client):
    response = post(client, "star", "two.pkl", pickle_bytes())
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["sample"] for p in predictions] == ["s0", "s1"]
    assert all(client.get(p["timeline_url"]).status_code == 200 for p in predictions)


def test_video_is_rendered_and_matches_the_library(client, work_dirs, tmp_path):
    import av

    data = video_bytes(tmp_path)
    response = post(client, "pst", "clip.mp4", data, window=12, stride=6)
    assert response.status_code == 200, response.text
    result = response.json()
    (tmp_path / "clip.mp4").write_bytes(data)
    [expected] = predict_path(work_dirs["pst"], tmp_path / "clip.mp4", window=12, stride=6)
    np.testing.assert_allclose(result["predictions"][0]["probabilities"], expected.probabilities, atol=1e-5)
    assert result["kind"] == "video" and result["render_url"].endswith(".mp4")
    rendered = client.get(result["render_url"])
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "video/mp4"
    (tmp_path / "rendered.mp4").write_bytes(rendered.content)
    with av.open(str(tmp_path / "rendered.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 24
    assert client.get(result["predictions"][0]["timeline_url"]).status_code == 200


def test_image_is_rendered_without_a_timeline(client):
    response = post(client, "vit", "photo.png", png_bytes(), render="true")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["kind"] == "image" and result["predictions"][0]["timeline_url"] is None
    drawn = client.get(result["render_url"])
    assert drawn.status_code == 200 and drawn.content.startswith(b"\x89PNG")
    assert post(client, "vit", "photo.png", png_bytes(), render="false").json()["render_url"] is None


def test_a_webm_from_a_browser_camera_is_a_video(tmp_path):
    import av

    path = tmp_path / "camera"
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert sniff(path).kind == "video"


# ---------------------------------------------------------------------------------------------------
# bad input: each answered 4xx with one line, nothing left behind


def test_wrong_kind_by_content_is_415_whatever_the_name(client):
    response = post(client, "star", "clip.mp4", png_bytes())  # a PNG named like a video
    assert response.status_code == 415
    assert response.json()["detail"] == "clip.mp4: is an image file; model 'star' takes " + " or ".join(
        f"{k} files" for k in _server(client).models["star"].kinds
    )
    text = post(client, "star", "keypoints.npy", b"joint,x,y\n1,2,3\n")  # text named like an array
    assert text.status_code == 415 and "not a video, an image or a skeleton file" in text.json()["detail"]
    assert post(client, "vit", "photo.png", npy_bytes()).status_code == 415
    assert request_folders(client) == []


def test_empty_file_is_415(client):
    response = post(client, "star", "empty.npy", b"")
    assert response.status_code == 415 and response.json()["detail"] == "empty.npy: the file is empty"


def test_corrupt_video_gets_the_cli_message(client, work_dirs, tmp_path):
    data = video_bytes(tmp_path)
    corrupt = data[:32] + bytes(len(data) - 32)  # the ftyp box, then zeros
    response = post(client, "pst", "broken.mp4", corrupt)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail == cli_message(tmp_path, work_dirs["pst"], "broken.mp4", corrupt)
    assert detail.startswith("broken.mp4: ") and "\n" not in detail and "lightact-serve" not in detail
    assert request_folders(client) == []


def test_malicious_pickle_is_refused_and_never_runs(client, work_dirs, tmp_path):
    sentinel = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(sentinel)!r}, 'w').write('pwned')",))

    data = pickle.dumps(Payload(), protocol=4)
    response = post(client, "star", "data.pkl", data)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "refusing to load builtins.exec" in detail and detail.startswith("data.pkl: ")
    assert detail == cli_message(tmp_path, work_dirs["star"], "data.pkl", data)
    assert not sentinel.exists()
    assert request_folders(client) == []


def test_object_array_and_unreadable_pickle_are_422(client):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    response = post(client, "star", "objects.npy", buffer.getvalue())
    assert response.status_code == 422 and "not a plain numeric .npy array" in response.json()["detail"]
    truncated = pickle_bytes()[:50]
    response = post(client, "star", "cut.pkl", truncated)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("cut.pkl: not a readable pickle")


def test_no_person_in_a_skeleton_file_is_422(client):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 30, 25, 3), np.float32))
    response = post(client, "star", "nobody.npy", buffer.getvalue())
    assert response.status_code == 422 and "no person" in response.json()["detail"]


def test_unknown_model_and_bad_options(client):
    response = post(client, "nope", "a.npy", npy_bytes())
    assert response.status_code == 404 and "unknown model 'nope'" in response.json()["detail"]
    bad_topk = post(client, "star", "a.npy", npy_bytes(), topk=0)
    assert bad_topk.status_code == 422 and "topk must be a positive integer" in bad_topk.json()["detail"]
    bad_window = post(client, "star", "a.npy", npy_bytes(), window=2.5)
    assert bad_window.status_code == 422 and "window must be a positive number of frames" in bad_window.text
    missing = client.post("/predict", data={"model": "star"})
    assert missing.status_code == 422 and missing.json() == {"detail": "file: Field required"}
    # A part without a file name is a plain field: refused in one line, its bytes not echoed.
    nameless = post(client, "star", "", npy_bytes())
    assert nameless.status_code == 422 and len(nameless.json()["detail"]) < 200
    assert request_folders(client) == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "/PLACE/pwned.npy", "..\\..\\x.npy", "a\x00b.npy"])
def test_client_file_names_never_touch_the_file_system(client, tmp_path, name):
    name = name.replace("/PLACE", str(tmp_path))
    response = post(client, "star", name, npy_bytes())
    assert response.status_code == 200, response.text
    shown = response.json()["file"]
    assert "/" not in shown and "\\" not in shown and ".." not in shown and "\x00" not in shown
    assert not (tmp_path / "pwned.npy").exists()
    assert all(p.name.startswith("req-") for p in request_folders(client))
    for folder in request_folders(client):
        assert {p.name for p in folder.iterdir()} == {"timeline_0.png"}


def test_oversize_upload_is_413_and_nothing_is_kept(models):
    limits = Limits(max_upload_mb=0.05, keep_s=60)
    with TestClient(create_app(models, limits)) as client:
        big = npy_bytes(frames=2000)  # 600 kB
        assert len(big) > limits.max_upload_bytes
        response = post(client, "star", "big.npy", big)
        assert response.status_code == 413
        assert request_folders(client) == []
        assert post(client, "star", "small.npy", npy_bytes()).status_code == 200


def test_a_video_longer_than_the_cap_is_413(models, tmp_path):
    with TestClient(create_app(models, Limits(max_video_s=1.0))) as client:
        response = post(client, "pst", "long.mp4", video_bytes(tmp_path, frames=30, fps=10))
        assert response.status_code == 413 and "3 s long" in response.json()["detail"]
        assert request_folders(client) == []


# ---------------------------------------------------------------------------------------------------
# concurrency, time limit, clean-up


class Gate:
    """Stands in for the server's prediction step: each call waits until :meth:`open`."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.started = threading.Semaphore(0)
        self.real = serve_app._predict
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        self.started.release()
        if not self.opened.wait(30):
            raise RuntimeError("the test never opened the gate")
        return self.real(*args)

    def open(self) -> None:
        self.opened.set()


def _wait_until(condition, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_a_full_queue_answers_429(models, monkeypatch):
    gate = Gate()
    monkeypatch.setattr(serve_app, "_predict", gate)
    with TestClient(create_app(models, Limits(workers=1, queue=1))) as client:
        results: list = []
        threads = [
            threading.Thread(target=lambda: results.append(post(client, "star", "a.npy", npy_bytes())))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        _wait_until(lambda: _server(client).pool.taken == 2)  # one running, one waiting
        assert client.get("/health").json()["busy"] == 2  # the event loop still answers
        refused = post(client, "star", "b.npy", npy_bytes())
        assert refused.status_code == 429 and "busy" in refused.json()["detail"]
        assert refused.headers["retry-after"]
        gate.open()
        for t in threads:
            t.join(30)
        assert [r.status_code for r in results] == [200, 200]
        assert post(client, "star", "c.npy", npy_bytes()).status_code == 200  # room again


def test_a_full_server_refuses_before_reading_the_upload(models, monkeypatch):
    """The 429 comes before the body is read: the application never asks for it (uvicorn would
    send ``100 Continue`` on that first read, and a waiting client would start its upload)."""
    import asyncio

    app = create_app(models, Limits(workers=1, queue=0))
    monkeypatch.setattr(WorkerPool, "full", property(lambda pool: True))
    reads: list[dict] = []
    sent: list[dict] = []

    async def receive() -> dict:
        reads.append({})
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [
        (b"content-type", b"multipart/form-data; boundary=b"),
        (b"content-length", b"500000000"),
        (b"expect", b"100-continue"),
    ]
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": "/predict",
        "root_path": "",
        "scheme": "http",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    assert reads == []
    assert sent[0]["status"] == 429 and (b"retry-after", b"5") in sent[0]["headers"]
    assert "busy" in json.loads(sent[1]["body"])["detail"]


def test_past_the_time_limit_is_504_and_the_abandoned_work_is_cleaned_up(models, monkeypatch):
    gate = Gate()
    monkeypatch.setattr(serve_app, "_predict", gate)
    with TestClient(create_app(models, Limits(workers=1, queue=0, timeout_s=0.3))) as client:
        response = post(client, "star", "slow.npy", npy_bytes())
        assert response.status_code == 504 and "time limit" in response.json()["detail"]
        # The work still holds its worker (a thread cannot be stopped): no second request yet.
        assert _server(client).pool.taken == 1
        assert post(client, "star", "next.npy", npy_bytes()).status_code == 429
        [folder] = request_folders(client)
        gate.open()
        _wait_until(lambda: not folder.exists() and _server(client).pool.taken == 0)
        assert _server(client).results == {}


def test_a_request_that_times_out_in_the_queue_never_starts(models, monkeypatch):
    gate = Gate()
    monkeypatch.setattr(serve_app, "_predict", gate)
    with TestClient(create_app(models, Limits(workers=1, queue=1, timeout_s=1.0))) as client:
        first: list = []
        running = threading.Thread(target=lambda: first.append(post(client, "star", "a.npy", npy_bytes())))
        running.start()
        assert gate.started.acquire(timeout=20)  # the first holds the only worker
        queued = post(client, "star", "b.npy", npy_bytes())
        assert queued.status_code == 504
        running.join(30)
        assert first[0].status_code == 504
        gate.open()
        _wait_until(lambda: _server(client).pool.taken == 0 and request_folders(client) == [])
        assert gate.calls == 1  # the queued one was cancelled before it started


def test_results_expire_and_the_server_folder_goes_at_shutdown(models):
    with TestClient(create_app(models, Limits(keep_s=60))) as client:
        result = post(client, "star", "a.npy", npy_bytes()).json()
        url = result["predictions"][0]["timeline_url"]
        assert client.get(url).status_code == 200
        assert client.get(url.replace("timeline_0", "timeline_9")).status_code == 404
        assert client.get(f"/results/{'x' * 16}/timeline_0.png").status_code == 404
        assert _server(client).sweep(now=time.monotonic() + 30) == 0
        assert _server(client).sweep(now=time.monotonic() + 61) == 1
        assert client.get(url).status_code == 404 and request_folders(client) == []
        root = _server(client).root
        assert root.stat().st_mode & 0o777 == 0o700
    assert not root.exists()


# ---------------------------------------------------------------------------------------------------
# content sniffing, the command line


def test_sniff_tells_kinds_by_content_not_name(tmp_path):
    cases = {
        "a.mp4": (npy_bytes(), "skeleton", ".npy"),
        "b.txt": (pickle_bytes(), "skeleton", ".pkl"),
        "c.npy": (png_bytes(), "image", ".png"),
        "d.png": (video_bytes(tmp_path), "video", ".mp4"),
    }
    for name, (data, kind, suffix) in cases.items():
        (tmp_path / name).write_bytes(data)
        found = sniff(tmp_path / name)
        assert (found.kind, found.suffix) == (kind, suffix), name
    (tmp_path / "e.pkl").write_bytes(b"(lp0\nI1\na.")  # protocol 0: text, not taken
    (tmp_path / "f.mp4").write_bytes(b"\x00" * 64)
    for name in ("e.pkl", "f.mp4"):
        with pytest.raises(UnsupportedFile):
            sniff(tmp_path / name)


def test_serve_without_the_extra_names_it(monkeypatch, work_dirs):
    monkeypatch.setattr(serve_package, "_REQUIRED", {"lightact_no_such_module": "fastapi"})
    result = CliRunner().invoke(cli_app, ["serve", str(work_dirs["star"])])
    assert result.exit_code == 2
    assert result.output.strip() == "lightact serve needs fastapi: pip install 'lightact[serve]'"


def test_serve_warns_when_bound_beyond_loopback(monkeypatch, work_dirs):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    for host, warned in (("127.0.0.1", False), ("::1", False), ("localhost", False), ("0.0.0.0", True)):
        said, warnings = [], []
        serve_package.serve([work_dirs["star"]], host, 8123, echo=said.append, warn=warnings.append)
        assert bool(warnings) == warned, host
        assert calls[-1] == {"host": host, "port": 8123, "log_level": "warning"}
        assert "star" in said[0]
    assert "0.0.0.0" in warnings[0] and "127.0.0.1" in warnings[0]


def test_serve_refuses_a_bad_work_dir(tmp_path):
    result = CliRunner().invoke(cli_app, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no checkpoint at" in result.output
    assert "Traceback" not in result.output
