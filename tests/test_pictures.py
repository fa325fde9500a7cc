"""What the PNGs show: the prediction timeline and the bench latency plot.

Each test draws through the public writer (``save_timeline``, ``plot_latency``) and inspects the
matplotlib figure it saved, so it checks what a person sees: which classes are drawn, where the
legend is, what the axis says.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lightact.inference.results import Prediction, WindowPrediction, top_classes

ACTIONS = ["wave", "sit_down", "drink_water", "stand_up", "clap", "walk_towards"]


@pytest.fixture
def saved_figures(monkeypatch):
    """The figures written by ``Figure.savefig`` during the test."""
    figures: list[Figure] = []
    original = Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        # Prediction.save_timeline clears its figure once written: keep what was drawn, to inspect.
        self.clear = lambda keep_observers=False: None
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def six_actions(window: int = 60, stride: int = 30, fps: float = 30.0) -> Prediction:
    """Six actions one after the other (the third brief), 16 classes: every window's top class is
    the action it covers, at 0.5-0.9."""
    classes = ACTIONS + [f"other_{i}" for i in range(10)]
    plan = [(0, 6.0), (1, 6.0), (2, 2.0), (3, 5.0), (4, 6.0), (5, 5.0)]
    truth = np.concatenate([[a] * int(seconds * fps) for a, seconds in plan])
    rng = np.random.default_rng(0)
    windows = []
    for start in range(0, len(truth) - window + 1, stride):
        action = np.bincount(truth[start : start + window], minlength=len(classes)).argmax()
        probs = rng.dirichlet(np.ones(len(classes))) * 0.1
        probs[action] += rng.uniform(0.5, 0.8)
        probs /= probs.sum()
        windows.append(
            WindowPrediction(
                start,
                start + window,
                start / fps,
                (start + window) / fps,
                probs,
                top_classes(probs, classes, 5),
            )  # fmt: skip
        )
    overall = np.mean([w.probabilities for w in windows], axis=0)
    return Prediction("seq.mp4", classes, overall, top_classes(overall, classes, 5), windows, fps,
                      len(truth), window, stride)  # fmt: skip


def _legend_labels(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_timeline_shows_every_windows_top_class(tmp_path, saved_figures):
    prediction = six_actions()
    overall_top5 = {c.label for c in prediction.topk}
    assert set(ACTIONS) - overall_top5  # an action the overall top 5 leaves out
    prediction.save_timeline(tmp_path / "timeline.png")
    (fig,) = saved_figures
    labels = _legend_labels(fig)
    for action in ACTIONS:
        assert any(label.startswith(f"{action} (") for label in labels), (action, labels)
    # One coloured segment per window, as high as that window's top probability, one colour a class.
    bars = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and p.get_height() > 0]
    assert len(bars) == len(prediction.windows)
    assert [b.get_height() for b in bars] == pytest.approx(
        [w.topk[0].probability for w in prediction.windows]
    )
    colour_of = {}
    for bar, w in zip(bars, prediction.windows, strict=True):
        colour_of.setdefault(w.topk[0].label, bar.get_facecolor())
        assert bar.get_facecolor() == colour_of[w.topk[0].label]
    assert len(set(colour_of.values())) == len(ACTIONS)
    # Segments tile the timeline: overlapping windows split at the midpoint, nothing drawn twice.
    edges = sorted((b.get_x(), b.get_x() + b.get_width()) for b in bars)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(edges, edges[1:], strict=False))
    assert prediction.label in fig.axes[0].get_title(loc="left")


def test_timeline_legend_is_outside_the_data(tmp_path, saved_figures):
    six_actions().save_timeline(tmp_path / "timeline.png")
    (fig,) = saved_figures
    renderer = FigureCanvasAgg(fig).get_renderer()
    legend = fig.axes[0].get_legend().get_window_extent(renderer)
    axes = fig.axes[0].get_window_extent(renderer)
    assert legend.x0 >= axes.x1  # beside the plot, covering nothing


def test_a_single_window_says_how_to_get_a_timeline(tmp_path, saved_figures):
    one = six_actions(window=900, stride=900)
    assert len(one.windows) == 1
    one.save_timeline(tmp_path / "one.png")
    assert "shorter --window" in saved_figures[0].axes[0].get_title(loc="left")


def _bench_rows(latencies: dict[str, float]) -> dict:
    rows = [
        {
            "model": m,
            "backend": "eager",
            "batch": 1,
            "status": "ok",
            "latency_ms_median": v,
            "latency_ms_p90": v * 1.1,
        }  # fmt: skip
        for m, v in latencies.items()
    ]
    return {"environment": {"cpu": "test", "torch_threads": 1, "device": "cpu"}, "rows": rows}


def test_bench_plot_of_one_model_has_bars_from_zero_on_a_linear_axis(tmp_path, saved_figures):
    from lightact.bench.report import plot_latency

    plot_latency(_bench_rows({"star_64": 4.2}), tmp_path / "one.png")
    (fig,) = saved_figures
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlim()[0] == 0
    (bar,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert bar.get_x() == 0 and bar.get_width() == pytest.approx(4.2)
    assert "linear scale" in ax.get_xlabel()


def test_bench_plot_of_a_wide_range_uses_dots_on_a_labelled_log_axis(tmp_path, saved_figures):
    from lightact.bench.report import plot_latency

    plot_latency(_bench_rows({"star_64": 1.5, "stgcn": 20.0, "pst_t": 900.0}), tmp_path / "wide.png")
    (fig,) = saved_figures
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel()
    assert not [p for p in ax.patches if isinstance(p, Rectangle)]  # no bar lengths on a log axis
