"""Poses of many videos into one annotation pickle: video lists, a pool of worker processes, and
:func:`run_pose`, which skips the videos whose part the store already holds."""

from __future__ import annotations

import contextlib
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightact.data.skeleton.pose.extractor import PoseExtractor, PoseResult, graph_threads, pose_annotation
from lightact.data.skeleton.pose.mediapipe import INSTALL_HINT, mediapipe_available
from lightact.data.skeleton.pose.parts import load_part, part_path, write_part
from lightact.data.video.reader import VIDEO_SUFFIXES, MissingDependencyError, VideoDecodeError, video_info
from lightact.errors import UsageError, check_writable_dir
from lightact.utils import available_cores, die_with_parent, exclusive_lock, progress_bar


def _read_video_list(path: Path) -> list[tuple[Path, int]]:
    """``path label`` per line (MMAction2 style; the label may be left out); relative paths are resolved
    against the list's folder. Blank lines and ``#`` comments are skipped."""
    videos: list[tuple[Path, int]] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        label = -1
        if len(parts) == 2 and re.fullmatch(r"-?\d+", parts[1]):
            name, label = parts[0], int(parts[1])
        else:
            name = line
        if not name:
            raise ValueError(f"{path}:{lineno}: no video path in {raw!r}")
        video = Path(name).expanduser()
        videos.append((video if video.is_absolute() else path.parent / video, label))
    return videos


def collect_videos(inputs: str | Path | Sequence[str | Path]) -> list[tuple[Path, int]]:
    """``(video, label)`` pairs from video paths, folders (searched recursively for video files, sorted)
    and video-list files (any other existing file that is not a video: ``path label`` lines)."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    videos: list[tuple[Path, int]] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not found:
                raise FileNotFoundError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) under {path}")
            videos += [(p, -1) for p in found]
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            if not path.is_file():  # named on the command line: a usage error (one in a list: a failure)
                raise FileNotFoundError(f"no video at {path}")
            videos.append((path, -1))
        elif path.is_file():
            videos += _read_video_list(path)
        else:
            raise FileNotFoundError(f"{path} is neither a video, a folder nor a video-list file")
    # The same video listed twice is processed once (the first label wins).
    unique: dict[Path, tuple[Path, int]] = {}
    for video, label in videos:
        unique.setdefault(video.resolve(), (video, label))
    return list(unique.values())


# Worker-process state (one extractor per process, reused for all its videos).
_WORKER: dict[str, Any] = {}


def _worker_init(max_persons: int, max_side: int | None, queue: Any) -> None:
    # The forkserver's child (or, with spawn, ours): it ends with that parent, which ends with us.
    die_with_parent(int(os.environ.get("LIGHTACT_POSE_PARENT", os.getppid())))
    _WORKER["extractor"] = PoseExtractor(max_persons=max_persons, max_side=max_side)
    _WORKER["queue"] = queue


def _process_one(
    extractor: PoseExtractor,
    video: Path,
    part: Path,
    on_frame: Callable[[int], None] | None,
    overlap: bool = False,
) -> dict[str, Any]:
    """Compute and store one video; a summary dict, with ``error`` set instead when it failed.
    ``overlap``: decoding and the person slots in threads of their own (the same poses)."""
    try:
        info = video_info(video)
        result = extractor.process_video(video, on_frame=on_frame, overlap=overlap)
        write_part(part, result, video, info.fps, extractor.max_persons, extractor.max_side)
        return {
            "frames": result.total_frames,
            "seconds": result.seconds,
            "person_share": result.person_share,
            "second_person_share": result.second_person_share,
        }
    except (VideoDecodeError, OSError, ValueError) as err:
        return {"error": str(err)}
    except Exception as err:  # never lose the other videos to one bad file
        return {"error": f"{video}: {type(err).__name__}: {err}"}


def _worker_run(index: int, video: str, part: str) -> dict[str, Any]:
    queue = _WORKER["queue"]

    def on_frame(n: int) -> None:
        queue.put((index, n))

    return _process_one(_WORKER["extractor"], Path(video), Path(part), on_frame)


def _unique_ids(videos: Sequence[Path]) -> list[str]:
    """``frame_dir`` of each video: its stem, or ``stem_<hash>`` when another video has the same stem."""
    counts: dict[str, int] = {}
    for v in videos:
        counts[v.stem] = counts.get(v.stem, 0) + 1
    return [
        v.stem if counts[v.stem] == 1 else f"{v.stem}_{part_path('.', v).stem.rsplit('-', 1)[1]}"
        for v in videos
    ]


def _pool_context():
    import multiprocessing

    # forkserver: workers fork from a clean server process that imported this module once, instead
    # of each worker importing it again (spawn) or inheriting the parent's threads (fork). The
    # forkserver (forkserver_guard), and the workers, end with the process that started them.
    os.environ["LIGHTACT_POSE_PARENT"] = str(os.getpid())
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([f"{__package__}.forkserver_guard", __name__])
        return ctx
    return multiprocessing.get_context("spawn")


class _PoseRun:
    """The videos one run computes, as they finish: ``summaries`` of those done, ``failed`` errors,
    and a progress bar of frames (``estimates``: the frame count each video is expected to have).

    ``jobs`` maps a video's index in the run to the video and the part its result goes to.
    """

    def __init__(
        self, bar: Any, num_videos: int, jobs: dict[int, tuple[Path, Path]], estimates: dict[int, int]
    ) -> None:
        self.bar, self.jobs, self.estimates = bar, jobs, estimates
        self.task = bar.add_task(f"pose: {num_videos} videos", total=sum(estimates.values()) or None)
        self.done_frames = dict.fromkeys(jobs, 0)
        self.summaries: dict[int, dict[str, Any]] = {}
        self.failed: dict[int, str] = {}

    def show(self, i: int, frames: int) -> None:
        """Video ``i`` has ``frames`` frames done."""
        self.done_frames[i] = frames
        finished = len(self.summaries) + len(self.failed)
        self.bar.update(
            self.task,
            completed=sum(self.done_frames.values()),
            total=sum(max(self.estimates[j], self.done_frames[j]) for j in self.jobs),
            description=f"pose: {finished}/{len(self.jobs)} videos"
            + (f", {len(self.failed)} failed" if self.failed else ""),
        )

    def finish(self, i: int, summary: dict[str, Any]) -> None:
        if "error" in summary:
            self.failed[i] = summary["error"]
            self.show(i, self.estimates[i])
        else:
            self.summaries[i] = summary
            self.show(i, summary["frames"])

    def run_here(self, max_persons: int, max_side: int | None, overlap: bool) -> None:
        """Every video in this process, one after another; ``overlap``: each with decoding and the
        person slots in threads, and each slot's graph on its share of the cores (the other cores
        are free)."""
        threads = graph_threads(max_persons, overlap)
        with PoseExtractor(
            max_persons=max_persons, max_side=max_side, inference_threads=threads
        ) as extractor:
            for i, (video, part) in self.jobs.items():
                summary = _process_one(extractor, video, part, lambda n, i=i: self.show(i, n), overlap)
                self.finish(i, summary)

    def run_in_pool(self, workers: int, max_persons: int, max_side: int | None) -> None:
        """The videos spread over ``workers`` processes, each with its own extractor."""
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        ctx = _pool_context()
        queue = ctx.Queue()
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(max_persons, max_side, queue),
        )
        try:
            pending = {
                pool.submit(_worker_run, i, str(video), str(part)): i
                for i, (video, part) in self.jobs.items()
            }
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                with contextlib.suppress(Exception):  # queue.Empty ends the draining
                    while True:
                        i, n = queue.get_nowait()
                        if i not in self.summaries and i not in self.failed:
                            self.show(i, n)
                for future in done:
                    i = pending.pop(future)
                    try:
                        self.finish(i, future.result())
                    except BrokenProcessPool:
                        video = self.jobs[i][0]
                        self.finish(i, {"error": f"{video}: a worker process died; rerun to retry"})
        finally:
            # On Ctrl-C: drop the videos not started yet; the running ones finish and are kept.
            pool.shutdown(wait=True, cancel_futures=True)
            queue.close()


def run_pose(
    inputs: str | Path | Sequence[str | Path],
    out: str | Path,
    labels: str | Path | None = None,
    workers: int | None = None,
    max_persons: int = 2,
    max_side: int | None = 640,
    progress: bool = True,
) -> dict[str, Any]:
    """Extract the poses of many videos into one annotation pickle, in parallel and resumably.

    ``inputs``: video paths, folders (searched recursively) and/or video-list files (``path label`` per
    line, relative paths against the list's folder). ``labels``: a class-names file (one per line),
    stored as ``classes``. Each finished video is written at once to
    ``<out>.parts/<safe-stem>-<hash>.npz``; a rerun skips videos whose part exists and matches (same
    file size and mtime, ``max_persons``, ``max_side``). A video that cannot be decoded is reported in
    ``stats['failed']`` and left out; it never stops the others. ``workers``: processes (default: the
    usable cores); one worker runs in this process, and when that is because only one video is
    left, with decoding and the person slots in threads (``PoseExtractor.process_video(overlap=True)``).

    Writes ``out`` ({``split``: {``all``: ids}, ``annotations``, [``classes``]}, via ``save_pickle``) and
    returns stats: ``videos``, ``computed``, ``resumed``, ``failed`` (list of {video, error}),
    ``frames`` (in the output), ``frames_computed``, ``seconds`` (wall clock of this run), ``fps``
    (frames computed per second of this run), ``per_video`` (frame_dir -> frames, seconds, fps,
    person_share, second_person_share, resumed), ``workers``, ``out``, ``written`` (False when
    every video failed: then ``out`` is left as it was).
    """
    start = time.perf_counter()
    if not mediapipe_available():
        raise MissingDependencyError(f"pose extraction needs MediaPipe: {INSTALL_HINT}")
    out = Path(out)
    # Everything the command line names is checked before anything is computed or written.
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: give the skeleton pickle to write")
    check_writable_dir(out.parent, "--out's folder")
    classes: list[str] | None = None
    if labels is not None:
        if not Path(labels).is_file():
            raise FileNotFoundError(f"--labels: no class-name file at {labels}")
        try:
            text = Path(labels).read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise UsageError(f"--labels {labels} is not a text file of class names ({err})") from None
        classes = [line.strip() for line in text.splitlines() if line.strip()]
    videos = collect_videos(inputs)
    if not videos:
        raise UsageError("no video to process: the inputs name none")
    with exclusive_lock(out.with_name(out.name + ".lock"), f"--out {out}"):
        return _run_pose(videos, out, classes, workers, max_persons, max_side, progress, start)


def _run_pose(
    videos: list[tuple[Path, int]],
    out: Path,
    classes: list[str] | None,
    workers: int | None,
    max_persons: int,
    max_side: int | None,
    progress: bool,
    start: float,
) -> dict[str, Any]:
    from lightact.data.skeleton.pickle_io import save_pickle

    parts_dir = out.with_name(out.name + ".parts")
    parts = [part_path(parts_dir, v) for v, _ in videos]

    results: dict[int, tuple[PoseResult, float]] = {}
    todo: list[int] = []
    for i, (video, _) in enumerate(videos):
        loaded = load_part(parts[i], video, max_persons, max_side) if video.is_file() else None
        if loaded is None:
            todo.append(i)
        else:
            results[i] = loaded

    estimates: dict[int, int] = {}
    for i in todo:
        try:
            estimates[i] = max(1, video_info(videos[i][0]).num_frames)
        except VideoDecodeError:
            estimates[i] = 1
    n_workers = max(1, min(workers if workers is not None else available_cores(), len(todo) or 1))

    with progress_bar(progress, "frames") as bar:
        run = _PoseRun(bar, len(videos), {i: (videos[i][0], parts[i]) for i in todo}, estimates)
        if todo and n_workers == 1:
            # One process because one video is left, not because one was asked for: the spare
            # cores decode and find the second person.
            run.run_here(max_persons, max_side, overlap=workers is None and available_cores() > 1)
        elif todo:
            run.run_in_pool(n_workers, max_persons, max_side)
    summaries, failed = run.summaries, run.failed

    # Results of this run are read back from their parts, so a rerun's output is byte-identical.
    for i in summaries:
        loaded = load_part(parts[i], videos[i][0], max_persons, max_side)
        if loaded is None:  # cannot happen unless the file was changed meanwhile
            failed[i] = f"{videos[i][0]}: its result {parts[i]} could not be read back"
        else:
            results[i] = loaded

    ok = sorted(results)
    ids = _unique_ids([videos[i][0] for i in ok])
    annotations = [
        pose_annotation(results[i][0], frame_dir, results[i][1], videos[i][1])
        for i, frame_dir in zip(ok, ids, strict=True)
    ]
    data: dict[str, Any] = {"split": {"all": ids}, "annotations": annotations}
    if classes is not None:
        data["classes"] = classes
    if annotations:  # with every video failed, an earlier good --out is kept, not emptied
        save_pickle(data, out)

    per_video = {}
    for i, frame_dir in zip(ok, ids, strict=True):
        result = results[i][0]
        per_video[frame_dir] = {
            "video": str(videos[i][0]),
            "frames": result.total_frames,
            "seconds": result.seconds,
            "fps": result.fps,
            "person_share": result.person_share,
            "second_person_share": result.second_person_share,
            "resumed": i not in summaries,
        }
    seconds = time.perf_counter() - start
    frames_computed = sum(s["frames"] for i, s in summaries.items() if i in results)
    failures = [{"video": str(videos[i][0]), "error": failed[i]} for i in sorted(failed)]
    if failures:
        shown = "; ".join(f["error"] for f in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        warnings.warn(f"{len(failures)} video(s) failed and were left out: {shown}{more}", stacklevel=2)
    return {
        "out": str(out),
        "videos": len(videos),
        "computed": len([i for i in summaries if i in results]),
        "resumed": len(results) - len([i for i in summaries if i in results]),
        "failed": failures,
        "frames": sum(results[i][0].total_frames for i in ok),
        "frames_computed": frames_computed,
        "seconds": seconds,
        "fps": frames_computed / seconds if seconds > 0 else 0.0,
        "per_video": per_video,
        "workers": n_workers if todo else 0,
        "written": bool(annotations),
    }
