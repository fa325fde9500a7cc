"""The FastAPI application: the page, ``GET /models``, ``GET /health``, ``POST /predict`` and the
results of each request, served from that request's private folder until they expire.

A request's life: the body is parsed while it streams in, and refused (413) the moment it passes
the upload cap (FastAPI's ``max_body_size``; Starlette spools the file to an anonymous temporary
file, in memory up to 1 MiB); the file is copied into a folder made for this request alone
(``mkdtemp``, mode 0700, inside the server's own), under a name the server makes up: the client's
file name is only ever shown, never used as a path. Its kind is told from its content
(:func:`lightact.serve.limits.sniff`), then a worker of the :class:`~lightact.serve.limits.WorkerPool`
predicts (and renders) it with the model's recogniser. The uploaded file is deleted as soon as the
prediction ends; the rendered video and timeline PNGs stay, under random URLs, for ``keep_s``
seconds. A failed or timed-out request's folder is removed when its work ends.

Errors are one line, the CLI's own message with the upload's name in place of the server's path:
404 unknown model or result, 413 too large (or a video longer than the duration cap), 415 not a
video, image or skeleton file by content (or not a kind the model takes), 422 a file of the right
kind that cannot be classified or a bad option, 429 busy (answered before the upload is read), 504
past the time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from lightact.inference import predict_path
from lightact.serve.limits import (
    Limits,
    PoolFull,
    TimeLimitExceeded,
    UnsupportedFile,
    Upload,
    WorkerPool,
    freeze_start_up_objects,
    release_free_memory,
    sniff,
    thaw_start_up_objects,
)
from lightact.serve.models import ServedModel
from lightact.utils import safe_file_name

__all__ = ["create_app"]

log = logging.getLogger("lightact.serve")
STATIC = files("lightact.serve") / "static"
_CHUNK = 1 << 20
_BUSY_HEADERS = {"Retry-After": "5"}  # seconds a refused (429) client should wait
# What a bad file raises from the predictors: the errors the CLI prints as one line.
_INPUT_ERRORS = (ValueError, OSError, pickle.UnpicklingError)
_MEDIA_TYPES = {".mp4": "video/mp4", ".png": "image/png"}
# Matplotlib is not thread-safe (fonts are cached and shared between figures): one timeline is
# drawn at a time. Drawing holds the GIL anyway, so the lock costs the workers no parallelism.
_TIMELINE_LOCK = threading.Lock()


class ModelInfo(BaseModel):
    name: str
    modality: str
    model: str | None
    backend: str
    classes: int
    class_names: list[str]
    kinds: list[str]
    window_unit: str


class LimitsInfo(BaseModel):
    max_upload_mb: float
    max_video_s: float
    timeout_s: float
    workers: int
    queue: int
    keep_s: float


class Health(BaseModel):
    status: str
    models: int
    busy: int
    capacity: int


class PredictResult(BaseModel):
    id: str
    model: str
    kind: str
    format: str
    file: str
    seconds: float
    render_url: str | None
    render_note: str | None
    expires_in_s: float
    # Each is Prediction.to_dict() (overall top-k, windows with their top-k, persons, ...) with
    # "timeline_url" added (null for images) and "source" the upload's name.
    predictions: list[dict[str, Any]]


@dataclass
class _Job:
    """One request's folder. Removed once its work has ended if the request gave up on it (an
    error, or the time limit), or, when it succeeded, when its results expire."""

    folder: Path
    abandoned: bool = False
    ended: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def end(self) -> None:
        with self.lock:
            self.ended = True
            remove = self.abandoned
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)

    def abandon(self) -> None:
        with self.lock:
            self.abandoned = True
            remove = self.ended
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class _Results:
    folder: Path
    files: dict[str, Path]
    expires: float


class ServerState:
    """What the application holds between requests: models, limits, pool, kept results."""

    def __init__(self, models: dict[str, ServedModel], limits: Limits, pool: WorkerPool) -> None:
        self.models = models
        self.limits = limits
        self.pool = pool
        self.root: Path | None = None
        self.results: dict[str, _Results] = {}

    def open(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lightact-serve-"))  # 0700: this user only

    def close(self) -> None:
        self.pool.shutdown()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.results.clear()

    def new_job(self) -> _Job:
        if self.root is None:
            raise RuntimeError("the server is not running (its lifespan has not started)")
        return _Job(Path(tempfile.mkdtemp(prefix="req-", dir=self.root)))

    def sweep(self, now: float | None = None) -> int:
        """Remove the results that have expired; returns how many."""
        now = time.monotonic() if now is None else now
        expired = [key for key, r in self.results.items() if r.expires <= now]
        for key in expired:
            shutil.rmtree(self.results.pop(key).folder, ignore_errors=True)
        return len(expired)


def display_name(filename: str | None) -> str:
    """The client's file name as messages show it: its last path part, made safe to print."""
    last = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return safe_file_name(last, "upload", strip="._", max_length=80)


def one_line(err: BaseException, job: _Job, shown: str) -> str:
    """``err``'s message on one line, with the upload's name where the server's paths were."""
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
    text = re.sub(re.escape(str(job.folder)) + r"(/[\w.-]+)?", lambda _: shown, text)
    return " ".join(text.split()) or type(err).__name__


def _frames_or_seconds(value: float | None, unit: str) -> int | float | None:
    """A form number as the predictor's option: whole frames as ``int``, seconds as ``float``
    (a fractional number of frames is left for the predictor to refuse)."""
    if value is None or unit != "frames" or not float(value).is_integer():
        return value
    return int(value)


def _predict(served: ServedModel, upload: Path, upload_kind: Upload, options: dict, render: bool) -> dict:
    """In a worker: predict ``upload`` (and render it), write the timelines, delete the upload."""
    try:
        return _predict_and_draw(served, upload, upload_kind, options, render)
    finally:
        upload.unlink(missing_ok=True)
        release_free_memory()


def _predict_and_draw(served: ServedModel, upload: Path, upload_kind: Upload, options: dict, render: bool):
    out = upload.parent
    recognizer = served.recognizer
    target, note = None, None
    if render and upload_kind.kind == "video":
        target = out / "render.mp4"
    elif render and upload_kind.kind == "image":
        target = out / "render.png"
    elif render:
        note = "a skeleton file has no video to draw on: see the timeline"
    predictions = predict_path(recognizer, upload, render=target, **options)
    upload.unlink()
    outputs: dict[str, Path] = {}
    if target is not None and target.is_file():
        outputs[target.name] = target
    timelines: list[str | None] = []
    for i, prediction in enumerate(predictions):
        if recognizer.inputs.timeline:
            name = f"timeline_{i}.png"
            with _TIMELINE_LOCK:
                outputs[name] = prediction.save_timeline(out / name)
            timelines.append(name)
        else:
            timelines.append(None)
    return {"predictions": predictions, "timelines": timelines, "outputs": outputs, "note": note}


def create_app(models: dict[str, ServedModel], limits: Limits | None = None) -> FastAPI:
    """The application serving ``models`` (:func:`lightact.serve.models.load_models`) within
    ``limits``; run it with uvicorn (``lightact serve``) or FastAPI's ``TestClient``."""
    limits = limits or Limits()
    state = ServerState(models, limits, WorkerPool(limits.workers, limits.queue))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state.open()
        freeze_start_up_objects()

        async def sweep_forever() -> None:
            while True:
                await asyncio.sleep(min(30.0, limits.keep_s / 2))
                state.sweep()

        sweeper = asyncio.create_task(sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            state.close()
            thaw_start_up_objects()

    # FastAPI's own /docs page loads Swagger UI from a CDN; fastapi-offline's serves the same
    # assets from the package, so the docs page, like ours, fetches nothing from elsewhere.
    app = FastAPIOffline(
        static_url="/static-docs",
        title="lightact",
        summary="Human action recognition: upload a video, an image or a skeleton file.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.server = state
    app.add_middleware(RefuseWhileBusy, pool=state.pool)

    @app.exception_handler(RequestValidationError)
    async def one_line_validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes each bad field's input: for a file sent as a plain field, the file.
        problems = [f"{'.'.join(map(str, e['loc'][1:])) or 'request'}: {e['msg']}" for e in err.errors()]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/health")
    def health() -> Health:
        return Health(status="ok", models=len(models), busy=state.pool.taken, capacity=state.pool.capacity)

    @app.get("/models")
    def list_models() -> dict[str, Any]:
        """The models served, what they take, and the server's limits."""
        return {
            "models": [ModelInfo(**m.describe()) for m in models.values()],
            "limits": LimitsInfo(**{k: getattr(limits, k) for k in LimitsInfo.model_fields}),
        }

    @app.post(
        "/predict",
        max_body_size=limits.max_upload_bytes,
        responses={
            404: {"description": "No such model"},
            413: {"description": "Upload larger than the cap, or a video longer than the duration cap"},
            415: {"description": "Not a video, image or skeleton file, or not one the model takes"},
            422: {"description": "A file or option that cannot be used; the CLI's one-line message"},
            429: {"description": "Every worker busy and the queue full"},
            504: {"description": "Past the per-request time limit"},
        },
    )
    async def predict(
        file: Annotated[UploadFile, File(description="A video, an image, or a skeleton .pkl/.npy file.")],
        model: Annotated[str, Form(description="A name from GET /models.")],
        window: Annotated[float | None, Form(description="Window: frames (seconds for long videos).")] = None,
        stride: Annotated[float | None, Form(description="Between window starts, same unit.")] = None,
        topk: Annotated[int, Form(description="Classes per window.")] = 5,
        render: Annotated[bool, Form(description="Draw skeletons and answers on the video.")] = True,
    ) -> PredictResult:
        started = time.monotonic()
        served = models.get(model)
        if served is None:
            raise HTTPException(404, f"unknown model {model!r}: this server has {', '.join(models)}")
        unit = served.recognizer.window_unit
        try:
            window_, stride_, topk_ = served.recognizer.check_options(
                _frames_or_seconds(window, unit), _frames_or_seconds(stride, unit), topk
            )
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        shown = display_name(file.filename)
        job = state.new_job()
        queued = False  # from then on the pool calls job.end once the work is over
        try:
            state.pool.refuse_if_full()  # before copying and probing the upload for nothing
            upload, found = await _receive(file, job, served, limits)
            options = {"window": window_, "stride": stride_, "topk": topk_}
            queued = True
            result = await state.pool.run(
                _predict, served, upload, found, options, render, timeout_s=limits.timeout_s, on_done=job.end
            )
        except BaseException as err:
            if not queued:
                job.end()
            job.abandon()
            raise _http_error(err, job, shown, model) from None
        rid = secrets.token_urlsafe(12)
        state.results[rid] = _Results(job.folder, result["outputs"], time.monotonic() + limits.keep_s)
        predictions = []
        for prediction, timeline in zip(result["predictions"], result["timelines"], strict=True):
            data = prediction.to_dict()
            data["source"] = shown
            data["timeline_url"] = f"/results/{rid}/{timeline}" if timeline else None
            predictions.append(data)
        rendered = next((name for name in result["outputs"] if name.startswith("render")), None)
        return PredictResult(
            id=rid,
            model=model,
            kind=found.kind,
            format=found.format,
            file=shown,
            seconds=round(time.monotonic() - started, 3),
            render_url=f"/results/{rid}/{rendered}" if rendered else None,
            render_note=result["note"],
            expires_in_s=limits.keep_s,
            predictions=predictions,
        )

    @app.get("/results/{rid}/{name}", responses={404: {"description": "No such result, or it has expired"}})
    def result_file(rid: str, name: str) -> FileResponse:
        """A rendered video or timeline of a request, while it is kept."""
        kept = state.results.get(rid)
        path = kept.files.get(name) if kept is not None else None
        if path is None or not path.is_file():
            raise HTTPException(404, "no such result (results are kept for a limited time)")
        return FileResponse(path, media_type=_MEDIA_TYPES.get(path.suffix, "application/octet-stream"))

    return app


class RefuseWhileBusy:
    """ASGI middleware: a ``POST /predict`` that arrives while every worker is busy and the queue
    is full is answered 429 before a byte of its body is read. The route itself can only refuse
    after FastAPI has parsed the form, that is after the whole upload; a client that waits for
    ``100 Continue`` before sending a large body (curl does) now sends none, and uvicorn, which
    sends the 100 only when the application first reads, never asks for it."""

    def __init__(self, app: Any, pool: WorkerPool) -> None:
        self.app = app
        self.pool = pool

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in ("/predict", f"{scope.get('root_path', '')}/predict")
        ):
            try:
                self.pool.refuse_if_full()
            except PoolFull as err:
                busy = JSONResponse({"detail": str(err)}, status_code=429, headers=_BUSY_HEADERS)
                await busy(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _http_error(err: BaseException, job: _Job, shown: str, model: str) -> BaseException:
    """The answer to a request that failed with ``err`` (anything unforeseen: 500, logged)."""
    if isinstance(err, HTTPException):
        return err
    if isinstance(err, UnsupportedFile):
        return HTTPException(415, f"{shown}: {err}")
    if isinstance(err, PoolFull):
        return HTTPException(429, str(err), headers=_BUSY_HEADERS)
    if isinstance(err, TimeLimitExceeded):
        return HTTPException(504, f"{shown}: {err}")
    if isinstance(err, _INPUT_ERRORS):
        return HTTPException(422, one_line(err, job, shown))
    if not isinstance(err, Exception):
        return err  # cancelled (the client went away), KeyboardInterrupt: not ours to answer
    log.error("predicting %s with %s failed", shown, model, exc_info=err)
    return HTTPException(500, f"{shown}: the server failed on this file (see its log)")


async def _receive(file: UploadFile, job: _Job, served: ServedModel, limits: Limits) -> tuple[Path, Upload]:
    """Copy the upload into the job's folder under a made-up name and tell its kind by content;
    a video is opened (the CLI's message when it cannot be) and its length checked."""
    raw = job.folder / "upload"
    with open(raw, "wb") as out:
        while chunk := await file.read(_CHUNK):
            out.write(chunk)
    found = await run_in_threadpool(sniff, raw)
    if found.kind not in served.kinds:
        takes = " or ".join(f"{k} files" for k in served.kinds)
        raise UnsupportedFile(f"is {_a(found.kind)} file; model {served.name!r} takes {takes}")
    path = raw.with_name(f"input{found.suffix}")
    os.replace(raw, path)
    if found.kind == "video":
        from lightact.data.video.reader import video_info

        info = await run_in_threadpool(video_info, path)
        if info.duration > limits.max_video_s:
            longest = f"this server takes up to {limits.max_video_s:g} s"
            raise HTTPException(413, f"the video is {info.duration:.0f} s long; {longest}")
    return path, found


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _version() -> str:
    from lightact import __version__

    return __version__
