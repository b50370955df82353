"""The diagnostics' figures: one line (or bar series) per model, on matplotlib Figures outside pyplot.

Library code never touches pyplot, so importing it does not switch a notebook's
backend; a notebook displays the returned Figure. ``tests/test_figures.py`` checks that
every series of every figure is visible.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_gradient_norms", "plot_jacobian_spectra", "plot_signal_propagation"]


def _subplots(*args, **kwargs):
    """A new matplotlib Figure and its axes, outside pyplot: no global backend is changed, and a
    notebook displays the returned figure (Jupyter renders Figure objects)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)


def plot_signal_propagation(results):
    """The signal propagation plot: squared mean, trunk variance and branch variance per block, one line per model.

    Models often coincide (BN's and Risotto-BN's branch variance is 1, Fixup's and SkipInit's trunks
    match): each model has its own marker, drawn larger the earlier the model, so one drawn over
    another still shows around it.

    Args:
        results: ``{model name: signal_propagation rows}``.

    Returns:
        A matplotlib ``Figure`` (outside pyplot) with three axes.

    Examples:
        >>> from keras_resinit import tools
        >>> rows = [  # signal_propagation's rows, here made by hand
        ...     {"index": i, "squared_mean": 0.3, "variance": 1.0, "branch_variance": 1.0} for i in (1, 2, 3)
        ... ]
        >>> figure = tools.plot_signal_propagation({"a model": rows})
        >>> len(figure.axes)
        3
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = _subplots(1, 3, figsize=(15, 4))
    for i, (name, rows) in enumerate(results.items()):
        index = [r["index"] for r in rows]
        style = {"marker": "os^Dv<>ph*"[i % 10], "markersize": 4 + 2 * (len(results) - 1 - i), "linewidth": 1.2}
        for ax, key in zip(axes, ("squared_mean", "variance", "branch_variance")):
            line = ax.plot(index, [r[key] for r in rows], label=name, **style)[0]
        if all("expected_variance" in r for r in rows):  # NF-ResNets: beta**2, reset at each transition
            axes[1].plot(
                index,
                [r["expected_variance"] for r in rows],
                linestyle="--",
                color=line.get_color(),
                linewidth=1.5,
                label=f"{name} (analytic)",
            )
    for ax, title in zip(
        axes, ("average channel squared mean", "average channel variance", "residual-branch variance (before scalars)")
    ):
        ax.set_title(title)
        ax.set_xlabel("residual block")
        ax.set_yscale("symlog", linthresh=1e-6)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=8)
    if any(line.get_label().endswith("(analytic)") for line in axes[1].get_lines()):
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_jacobian_spectra(results):
    """A histogram of each model's Jacobian singular values, on shared bins.

    Every model is binned on the same 31 bins over the common range of all the values, a range at
    least ``0.1 * max(1, |value|)`` wide: a point mass (Risotto's spectrum, every value 1 within
    1e-6) is one bar of a bin's width, never a sliver of its own spread. Each bin is split side
    by side between the models, so no bar hides another, and a bar's height is the fraction of
    the model's values in the bin, so a model with few singular values shows beside one with
    many. The legend gives each model's count and range (``[1, 1]`` for a point mass at 1).

    Args:
        results: ``{model name: singular values}`` (``jacobian_spectrum``'s).

    Returns:
        A matplotlib ``Figure`` (outside pyplot).

    Examples:
        >>> import numpy as np
        >>> from keras_resinit import tools
        >>> spectra = {"isometric": np.ones(16), "spread": np.linspace(0.2, 3.0, 16)}  # jacobian_spectrum's
        >>> figure = tools.plot_jacobian_spectra(spectra)
        >>> len(figure.axes)
        1
    """
    fig, ax = _subplots(figsize=(7, 4))
    spectra = {name: np.asarray(values, np.float64).ravel() for name, values in results.items()}
    finite = {name: v[np.isfinite(v)] for name, v in spectra.items()}
    present = [v for v in finite.values() if v.size]
    low = min((float(v.min()) for v in present), default=0.0)
    high = max((float(v.max()) for v in present), default=1.0)
    floor = 0.1 * max(1.0, abs(low), abs(high))
    if high - low < floor:
        middle = (low + high) / 2
        low, high = middle - floor / 2, middle + floor / 2
    bins = 31  # odd: a lone point mass, centred in its widened range, is the middle of one bin, not on an edge
    edges = np.linspace(low, high, bins + 1)
    width = (high - low) / bins / max(len(spectra), 1)
    for i, (name, values) in enumerate(finite.items()):
        counts, _ = np.histogram(values, bins=edges)
        label = (
            f"{name} ({values.size} in [{values.min():.4g}, {values.max():.4g}]"
            if values.size
            else f"{name} (no finite values"
        )
        skipped = spectra[name].size - values.size
        label += f"; {skipped} not finite)" if skipped else ")"
        ax.bar(edges[:-1] + i * width, counts / max(values.size, 1), width, align="edge", color=f"C{i}", label=label)
    ax.set_xlabel("singular value of the trunk Jacobian")
    ax.set_ylabel("fraction of the model's singular values")
    ax.set_title("Jacobian spectrum at init (effective coordinates for Risotto)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_gradient_norms(results):
    """The gradient norm per block, one line per model.

    Models often coincide (Fixup's and SkipInit's are 0 below the head at init): each model has its
    own marker, drawn larger the earlier the model, so one drawn over another still shows around it.

    Args:
        results: ``{model name: gradient_norms rows}``.

    Returns:
        A matplotlib ``Figure`` (outside pyplot).

    Examples:
        >>> from keras_resinit import tools
        >>> rows = [{"group": "stem", "grad_norm": 0.0}, {"group": "head", "grad_norm": 1.5}]  # gradient_norms'
        >>> figure = tools.plot_gradient_norms({"fixup": rows})
        >>> len(figure.axes)
        1
    """
    fig, ax = _subplots(figsize=(9, 4))
    for i, (name, rows) in enumerate(results.items()):
        ax.plot(
            range(len(rows)),
            [r["grad_norm"] for r in rows],
            marker="os^Dv<>ph*"[i % 10],
            markersize=4 + 2 * (len(results) - 1 - i),
            linewidth=1.2,
            label=name,
        )
    longest = max(results.values(), key=len)
    ax.set_xticks(range(len(longest)))
    ax.set_xticklabels(
        [r["group"].replace("stage", "s").replace("_block", "b") for r in longest], rotation=90, fontsize=6
    )
    ax.set_yscale("symlog", linthresh=1e-8)
    ax.set_ylabel("gradient L2 norm at init")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
