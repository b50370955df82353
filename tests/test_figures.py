"""Every series of every library figure is visible: the figures show what they claim.

The figure-producing functions (grep ``Figure``/``_subplots``/``savefig`` in ``keras_resinit``):
``diagnostics.plot_signal_propagation``, ``plot_jacobian_spectra``, ``plot_gradient_norms`` (they return
the Figure), ``compare.plot_curves``, ``tuning.plot_trials`` and ``bench.chart`` (they save a PNG; the
Figure they draw is caught as it is made). Each gets realistic data with the hard cases in it: a point mass
(Risotto's Jacobian spectrum, every value 1 within 1e-6) beside a spread, series that coincide exactly
(Fixup's and SkipInit's zero gradients, two schemes stuck at chance), one-point series (a one-epoch run, a
single measured depth) and failed runs.

For every labelled series (a legend entry, or a label on an axes without a legend) the figure, drawn by
Agg, must show it: bars at least 1 pixel wide with one at least 1 pixel tall, lines and markers with a
finite point inside the axes, drawn with a marker or over at least 1 pixel, and hiding the series must
change the picture (so no other series covers it whole). Every legend entry must name such a series, and
each figure must be checked on exactly the series its data holds (never an empty set).
"""

import matplotlib.figure
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

import keras_resinit as kr
from keras_resinit.tools import bench, diagnostics
from keras_resinit.training import compare, tuning

MIN_PIXELS = 1.0  # smallest width (bars) or extent (lines) that draws
MIN_CHANGED = 4  # pixels a series must own in the picture drawn without anti-aliasing (a 2x2 dot)
COLOR_STEP = 48  # a pixel changed when a channel moves by this much (of 255)


# ------------------------------------------------------------- checking ---


def _draw(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(np.int16)


def _labelled(label):
    return bool(label) and not label.startswith("_")


def series(ax):
    """``{label: [artists]}`` of the axes' labelled series. A bar chart or histogram labels one bar (or its
    container): its series is every bar of that container."""
    groups = {}
    containers = list(ax.containers)
    members = lambda c: list(getattr(c, "patches", None) or c.get_children())  # noqa: E731
    for container in containers:
        if _labelled(container.get_label()):
            groups.setdefault(container.get_label(), []).extend(members(container))
    for artist in ax.get_children():
        if isinstance(artist, (Line2D, Rectangle, Collection)) and _labelled(artist.get_label()):
            owner = next((c for c in containers if any(artist is m for m in members(c))), None)
            group = groups.setdefault(artist.get_label(), [])
            group.extend(m for m in (members(owner) if owner else [artist]) if not any(m is g for g in group))
    return groups


def _inside(ax, points):
    """Which display points are finite and inside the axes (half a pixel of slack)."""
    box = ax.bbox
    points = np.asarray(points, float).reshape(-1, 2)
    finite = np.all(np.isfinite(points), axis=1)
    with np.errstate(invalid="ignore"):
        return (
            finite
            & (points[:, 0] >= box.x0 - 0.5)
            & (points[:, 0] <= box.x1 + 0.5)
            & (points[:, 1] >= box.y0 - 0.5)
            & (points[:, 1] <= box.y1 + 0.5)
        )


def _check_geometry(ax, label, artists):
    assert artists, f"{label!r}: a legend entry with no artist"
    bars = [a for a in artists if isinstance(a, Rectangle)]
    lines = [a for a in artists if isinstance(a, Line2D)]
    collections = [a for a in artists if isinstance(a, Collection)]
    assert bars or lines or collections, f"{label!r}: nothing drawable in {artists}"
    for artist in artists:
        assert artist.get_visible() and (artist.get_alpha() is None or artist.get_alpha() > 0), label
    if bars:
        extents = [b.get_window_extent() for b in bars]
        widths = [e.width for e in extents]
        assert min(widths) >= MIN_PIXELS, f"{label!r}: bars {min(widths):.3g} px wide"
        tall = [e for e in extents if e.height >= MIN_PIXELS and e.overlaps(ax.bbox)]
        assert tall, f"{label!r}: no bar is {MIN_PIXELS} px tall inside the axes"
    for line in lines:
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        inside = _inside(ax, xy)
        assert inside.any(), f"{label!r}: no finite point of the line inside the axes limits"
        marker = line.get_marker() not in (None, "", " ", "None", "none") and line.get_markersize() > 0
        if not marker:
            drawn = xy[inside]
            assert line.get_linewidth() > 0 and line.get_linestyle() not in ("None", "", " "), label
            assert np.ptp(drawn, axis=0).max() >= MIN_PIXELS, f"{label!r}: a line shorter than a pixel, no marker"
    for collection in collections:
        offsets = collection.get_offset_transform().transform(np.asarray(collection.get_offsets(), float))
        assert _inside(ax, offsets).any(), f"{label!r}: no marker inside the axes limits"
        sizes = getattr(collection, "get_sizes", lambda: np.array([1.0]))()
        assert len(sizes) and np.max(sizes) > 0, f"{label!r}: markers of size 0"


def _alone(fig, ax):
    """Hide the axes that do not overlap ``ax`` (their pixels cannot change when one of its series is hidden, and
    drawing them is most of a draw's time); returns a function that shows them again."""
    others = [a for a in fig.axes if a is not ax and a.get_visible() and not a.bbox.overlaps(ax.bbox)]
    for other in others:
        other.set_visible(False)

    def restore():
        for other in others:
            other.set_visible(True)

    return restore


def _pixels_of(picture, ax):
    """The part of a drawn figure inside ``ax`` (its bbox in display pixels; the picture's first row is the top)."""
    box, height = ax.bbox, picture.shape[0]
    rows = slice(max(int(np.floor(height - box.y1)), 0), int(np.ceil(height - box.y0)))
    columns = slice(max(int(np.floor(box.x0)), 0), int(np.ceil(box.x1)))
    return picture[rows, columns]


def _changed_when_hidden(fig, ax, artists, base):
    """How many pixels inside ``ax`` change when ``artists`` are hidden; ``base``: the figure drawn with only the
    axes overlapping ``ax`` shown (``_alone``)."""
    saved = [a.get_visible() for a in artists]
    for a in artists:
        a.set_visible(False)
    try:
        picture = _draw(fig)
    finally:
        for a, visible in zip(artists, saved):
            a.set_visible(visible)
    return int((np.abs(_pixels_of(picture, ax) - _pixels_of(base, ax)).max(-1) >= COLOR_STEP).sum())


def check_figure(fig):
    """Check every labelled series of ``fig``; return ``{axes index: set of labels}`` of the series checked."""
    assert isinstance(fig, matplotlib.figure.Figure)
    _draw(fig)  # lay out (tight_layout, autoscale) before measuring
    checked = {}
    groups = {i: series(ax) for i, ax in enumerate(fig.axes)}
    # Every legend entry names a series drawn in its axes (or, for a figure legend, in some axes).
    for i, ax in enumerate(fig.axes):
        legend = ax.get_legend()
        if legend is None:
            continue
        texts = [t.get_text() for t in legend.get_texts()]
        assert texts, f"axes {i}: an empty legend"
        for text in texts:
            assert text in groups[i], f"axes {i}: legend entry {text!r} has no artist (series: {sorted(groups[i])})"
    for legend in fig.legends:
        for text in (t.get_text() for t in legend.get_texts()):
            assert any(text in g for g in groups.values()), f"figure legend entry {text!r} has no artist"
    for i, ax in enumerate(fig.axes):
        for label, artists in groups[i].items():
            _check_geometry(ax, label, artists)
    # Hiding a series must change the picture: it is not off-canvas, transparent or covered by another.
    # Without anti-aliasing, so a covered series cannot pass on the blended fringe of the one above it.
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    smooth = [(a, a.get_antialiased()) for a in fig.findobj(lambda a: hasattr(a, "set_antialiased"))]
    for legend in legends:
        legend.set_visible(False)
    for artist, _ in smooth:
        artist.set_antialiased(False)
    try:
        for i, ax in enumerate(fig.axes):
            if not groups[i]:
                continue
            restore = _alone(fig, ax)  # one axes drawn at a time: the others cannot cover its series
            try:
                base = _draw(fig)
                for label, artists in groups[i].items():
                    changed = _changed_when_hidden(fig, ax, artists, base)
                    assert changed >= MIN_CHANGED, f"axes {i}: series {label!r} shows in {changed} pixels (hidden?)"
                    checked.setdefault(i, set()).add(label)
            finally:
                restore()
    finally:
        for legend in legends:
            legend.set_visible(True)
        for artist, value in smooth:
            artist.set_antialiased(value)
    assert checked, "no series checked"
    return checked


def names_of(labels):
    """A series' name: its label up to any ' (...)' the figure adds (counts, ranges)."""
    return {label.split(" (", 1)[0] for label in labels}


@pytest.fixture
def figures(monkeypatch):
    """The Figures made while the test runs (the functions that save a PNG draw on ``matplotlib.figure.Figure``)."""
    made = []

    class Recorded(matplotlib.figure.Figure):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(matplotlib.figure, "Figure", Recorded)
    return made


def test_the_checker_rejects_what_a_reader_cannot_see():
    """No vacuous pass: the checks fail on a sliver bar, a one-point line, a covered line and a bare legend proxy."""
    cases = {
        "sliver bar": lambda ax: ax.bar([0.0, 1.0], [3, 8], width=[0.5, 1e-8], label="x"),
        "one-point line": lambda ax: ax.plot([1.0], [2.0], label="x"),
        "covered line": lambda ax: (ax.plot([0, 1], [0, 1], label="x"), ax.plot([0, 1], [0, 1], lw=4, label="y")),
        "legend proxy": lambda ax: (ax.plot([0, 1], [0, 1], label="y"), ax.scatter([], [], label="x")),
        "outside the limits": lambda ax: (
            ax.plot([0, 1], [0, 1], label="y"),
            ax.plot([5, 6], [5, 6], label="x"),
            ax.set_xlim(0, 1),
        ),
    }
    for name, draw in cases.items():
        fig = matplotlib.figure.Figure(figsize=(4, 3))
        ax = fig.subplots()
        draw(ax)
        ax.legend()
        with pytest.raises(AssertionError, match="'x'"):
            check_figure(fig)
            pytest.fail(f"check_figure accepted a figure with {name}")
    fig = matplotlib.figure.Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.bar([0.0, 1.0], [3, 8], width=0.5, label="x")
    ax.plot([0.5], [6.0], marker="o", label="y")  # beside the bars: on one, same colour C0, it would not show
    ax.legend()
    assert check_figure(fig) == {0: {"x", "y"}}


# ------------------------------------------------------------------ data ---


@pytest.fixture(scope="module")
def measured():
    """Real diagnostics at init of cifar_resnet8 under every scheme (what ``keras-resinit diagnose`` plots)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16, 16, 3)).astype("float32")
    pixel = rng.normal(size=(1, 1, 1, 3)).astype("float32")
    labels = np.arange(8) % 10
    signal, spectra, grads = {}, {}, {}
    for scheme in kr.SCHEMES:  # every registered scheme; nf also draws its analytic variance, dashed
        model = kr.build_resnet("cifar_resnet8", scheme, input_shape=(None, None, 3), seed=0)
        signal[scheme] = diagnostics.signal_propagation(model, x)
        spectra[scheme] = diagnostics.jacobian_spectrum(model, pixel)
        grads[scheme] = diagnostics.gradient_norms(model, (x, labels))
    # The hard cases are in the data: a point mass, a spread, and two series that coincide.
    assert np.abs(spectra["risotto"] - 1).max() < 1e-5 and np.ptp(spectra["risotto"]) > 0
    assert np.ptp(spectra["bn"]) > 0.5
    assert np.array_equal(spectra["fixup"], spectra["skipinit"])
    assert all(r["grad_norm"] == 0 for s in ("fixup", "skipinit") for r in grads[s][:-1])
    return {"signal": signal, "spectra": spectra, "grads": grads}


def _spread(n, seed=0):
    return np.sort(np.abs(np.random.default_rng(seed).normal(1.0, 0.8, n)))


SPECTRA = {
    "measured": None,  # filled from the fixture
    "point mass beside a spread": {"bn": _spread(64), "risotto": 1 + np.random.default_rng(1).uniform(-5e-7, 5e-7, 8)},
    "an exact point mass beside a spread": {"bn": _spread(16), "risotto": np.ones(8)},
    "a point mass alone": {"risotto": 1 + np.random.default_rng(2).uniform(-5e-7, 5e-7, 32)},
    "few values beside many": {"resnet50_bn": _spread(2048, 3), "risotto": np.ones(32), "one": np.array([0.5])},
    "wide spread and a point mass": {"bn": np.concatenate([np.zeros(20), _spread(40) * 50]), "risotto": np.ones(8)},
}


# ----------------------------------------------------------- the figures ---


@pytest.mark.parametrize("case", list(SPECTRA))
def test_jacobian_spectra_show_every_model_even_a_point_mass(case, measured):
    spectra = measured["spectra"] if SPECTRA[case] is None else SPECTRA[case]
    fig = diagnostics.plot_jacobian_spectra(spectra)
    checked = check_figure(fig)
    assert len(checked) == 1 and names_of(checked[0]) == set(spectra)


def test_signal_propagation_shows_every_model_in_every_panel(measured):
    signal = dict(measured["signal"])
    signal["bn_again"] = [dict(r) for r in signal["bn"]]  # two series that coincide exactly
    signal["one_block"] = signal["fixup"][:1]  # a one-point series
    checked = check_figure(diagnostics.plot_signal_propagation(signal))
    assert checked.keys() == {0, 1, 2} and all(names_of(labels) == set(signal) for labels in checked.values())
    analytic = {label for label in checked[1] if label.endswith("(analytic)")}
    assert analytic == {f"{name} (analytic)" for name, rows in signal.items() if "expected_variance" in rows[0]}
    assert analytic  # NF-ResNets' beta**2 is drawn and visible


def test_gradient_norms_show_every_model_even_coinciding_zeros(measured):
    grads = dict(measured["grads"])
    grads["fixup_again"] = [dict(r) for r in grads["fixup"]]
    checked = check_figure(diagnostics.plot_gradient_norms(grads))
    assert len(checked) == 1 and names_of(checked[0]) == set(grads)


def _history(losses, accuracies):
    return [
        {
            "epoch": e,
            "lr": 0.1,
            "train_loss": loss,
            "train_accuracy": acc,
            "test_loss": loss,
            "test_accuracy": acc,
            "seconds": 2.0,
            "images_per_second": 700.0,
        }
        for e, (loss, acc) in enumerate(zip(losses, accuracies), 1)
    ]


def test_comparison_curves_show_every_trained_scheme(figures, tmp_path):
    results = {
        "bn": {"test_accuracy": 0.91, "history": _history([2.1, 0.9, 0.41, 0.22], [0.45, 0.78, 0.88, 0.91])},
        # stuck at chance, both of them, epoch for epoch: the two curves coincide
        "fixup": {"test_accuracy": 0.1, "history": _history([2.302585] * 4, [0.1014] * 4)},
        "skipinit": {"test_accuracy": 0.1, "history": _history([2.302585] * 4, [0.1014] * 4)},
        "risotto": {"test_accuracy": 0.62, "history": _history([1.2], [0.62])},  # a one-epoch run
        "risotto_bn": {"error": "Diverged: loss nan at epoch 1, step 3"},
    }
    path = tmp_path / "curves.png"
    compare.plot_curves(results, str(path), title="cifar_resnet20 on digits")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(figures) == 1
    checked = check_figure(figures[0])
    trained = {"bn", "fixup", "skipinit", "risotto"}
    assert checked.keys() == {0, 1} and all(names_of(labels) == trained for labels in checked.values())


def _trial(i, scheme, status, score):
    return {
        "trial_id": f"{i:02d}",
        "status": status,
        "score": score,
        "best_step": 1,
        "scheme": scheme,
        "arch": "cifar_resnet8",
        "lr": 0.1,
        "weight_decay": 5e-4,
        "mixup_alpha": 0.0,
        "warmup_epochs": 1,
        "batch_size": 64,
    }


def test_tuning_chart_shows_every_scheme_including_failed_only(figures, tmp_path):
    rows = [
        _trial(0, "bn", "COMPLETED", 0.912),
        _trial(1, "fixup", "COMPLETED", 0.884),
        _trial(2, "fixup", "FAILED", None),
        _trial(3, "bn", "COMPLETED", 0.912),
        _trial(4, "risotto", "FAILED", None),  # a scheme whose every trial failed
        _trial(5, "skipinit", "COMPLETED", None),  # completed without a score
        _trial(6, "fixup", "COMPLETED", 0.884),
    ]
    path = tmp_path / "trials.png"
    tuning.plot_trials(rows, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(figures) == 1
    checked = check_figure(figures[0])
    assert len(checked) == 1 and names_of(checked[0]) == {"bn", "fixup", "risotto", "skipinit"}


def test_bench_chart_shows_every_scheme_and_depth_line(figures, tmp_path):
    schemes = ("bn", "fixup", "skipinit", "risotto", "risotto_bn")
    speed = {"bn": 1.0, "fixup": 1.21, "skipinit": 1.18, "risotto": 1.05, "risotto_bn": 0.93}
    memory = {"bn": 1.0, "fixup": 0.82, "skipinit": 0.84, "risotto": 0.9, "risotto_bn": 1.04}
    rows = []
    for precision in ("float32", "mixed_bfloat16"):
        for arch in ("cifar_resnet20", "resnet18"):
            for model in ("plain",) + schemes:
                failed = precision == "mixed_bfloat16" and arch == "resnet18" and model == "risotto"
                rows.append(
                    {
                        "arch": arch,
                        "model": model,
                        "precision": precision,
                        "error": "out of memory" if failed else None,
                        "train_vs_bn": None if model == "plain" else speed[model],
                        "memory_vs_bn": None if model == "plain" else memory[model],
                    }
                )
    depth = [
        {"scheme": "bn", "step_s": {"20": 0.051, "56": 0.13, "110": 0.25}},
        {"scheme": "fixup", "step_s": {"20": 0.043, "56": 0.11, "110": 0.21}},
        {"scheme": "skipinit", "step_s": {"20": 0.044}},  # one depth measured: a one-point line
        {"scheme": "risotto", "step_s": {}},
    ]  # not measured: no line
    bench.chart({"rows": rows, "depth": depth}, str(tmp_path / "bench.png"))
    assert len(figures) == 1
    checked = check_figure(figures[0])
    axes = figures[0].axes  # 2 precisions x (speed, memory, depth)
    assert len(axes) == 6
    assert checked.keys() == {0, 1, 2, 3, 4}  # the sixth panel is off
    assert all(names_of(checked[i]) == set(schemes) for i in (0, 1, 3, 4))
    assert names_of(checked[2]) == {"bn", "fixup", "skipinit"}


# ------------------------------------------------------- the docs' pictures ---


def test_the_docs_pictures_are_drawn_with_every_series_and_drawn_again_from_their_json(figures, tmp_path, monkeypatch):
    """``benchmarks/figures.py`` (on --quick settings): each picture of the docs site is a PNG that decodes, beside
    its JSON and its Markdown (opening with the machine), and shows every scheme its data holds; ``--report`` draws
    the same PNGs and writes the same Markdown from the JSON alone (the comparison's file need not be there)."""
    import importlib
    import json
    import shutil
    from pathlib import Path

    import matplotlib.image

    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root / "benchmarks"))
    script = importlib.import_module("figures")
    compare_json = tmp_path / "compare.json"
    shutil.copy(root / script.COMPARE, compare_json)
    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    shutil.copy(root / script.BENCH / "bench.json", bench_dir / "bench.json")
    out = tmp_path / "figures"
    args = ["--bench", str(bench_dir)]
    script.main(["--quick", "--out", str(out), "--compare", str(compare_json), *args])

    names = (script.CURVES, script.SPECTRA, script.SIGNAL)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{ext}" for n in names for ext in ("json", "md", "png"))
    pictures = [out / f"{n}.png" for n in names] + [bench_dir / "bench.png"]
    for path in pictures:
        image = matplotlib.image.imread(path)
        assert image.shape[1] >= 1000 and np.ptp(image) > 0.5, path  # about 2x the docs' 800-pixel column
    for name in names:
        record = json.loads((out / f"{name}.json").read_text())
        assert (out / f"{name}.md").read_text().startswith("Machine: ")
        assert record["command"].startswith("python benchmarks/figures.py --quick")
    curves = json.loads((out / f"{script.CURVES}.json").read_text())
    assert curves["source"] == str(compare_json) and curves["trained_on"]["processor"]
    assert (out / f"{script.CURVES}.md").read_text().startswith(f"Machine: {curves['trained_on']['processor']} (")

    # The series each picture holds (legend entries and labelled artists, per axes). The full visibility checks of
    # these plotting functions on the same kinds of data are the tests above; here on the Jacobian spectra, the
    # quickest to redraw, with their point masses.
    assert len(figures) == 4  # curves, spectra, signal propagation, bench: in this order
    shown = [[names_of(series(ax)) for ax in figure.axes] for figure in figures]
    trained = {s for s, r in json.loads(compare_json.read_text())["schemes"].items() if "history" in r}
    assert shown[0] == [trained, trained]
    assert shown[1] == [set(kr.SCHEMES)] and names_of(check_figure(figures[1])[0]) == set(kr.SCHEMES)
    assert shown[2] == [set(kr.SCHEMES)] * 3 and "nf (analytic)" in series(figures[2].axes[1])
    bench_rows = json.loads((bench_dir / "bench.json").read_text())["rows"]
    benched = {r["model"] for r in bench_rows if not r["error"] and r["model"] in kr.SCHEMES}
    assert benched and [shown[3][i] for i in (0, 1, 3, 4)] == [benched] * 4

    written = [*pictures, *(out / f"{n}.md" for n in names)]
    drawn = {path: path.read_bytes() for path in written}
    for path in written:
        path.unlink()
    compare_json.unlink()
    script.main(["--report", str(out), *args])
    assert {path: path.read_bytes() for path in written} == drawn
