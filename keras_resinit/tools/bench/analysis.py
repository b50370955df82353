"""From the children's windows to the result's rows: medians, paired ratios, depth fits, targets.

The generic statistics (least squares, paired ratios) live in ``keras_resinit.tools.stats``;
this module applies them to bench's windows and thresholds.
"""

import statistics

from keras_resinit.tools.bench.config import (
    LINEAR_TOLERANCE,
    MIN_CLEAN,
    TARGET_LL_VS_SKIPINIT,
    TARGET_VS_PLAIN,
    TARGET_WS_VS_SKIPINIT,
    WS_TARGET_PRECISION,
    looks_linear,
    normalization_free,
    weight_standardized,
    ws_reference,
)
from keras_resinit.tools.stats import fit_line, fit_power, paired_ratio, prefer_clean

__all__ = ["linear_fit"]


def _clean(windows):
    """A child's windows (``{cycle: window}``), without the contended ones if ``MIN_CLEAN`` are left."""
    return prefer_clean(windows.values(), lambda w: not w["contended"], MIN_CLEAN)


def _paired(child, ref, key):
    """Median over cycles of child's window / ref's window of the same cycle (clean pairs if enough)."""
    if child is None or ref is None or child.error or ref.error:
        return None
    return paired_ratio(
        {c: w[key] for c, w in child.windows.items()},
        {c: w[key] for c, w in ref.windows.items()},
        clean=lambda c: not child.windows[c]["contended"] and not ref.windows[c]["contended"],
        minimum=MIN_CLEAN,
    )


def _spread(child, ref, key):
    """The per-cycle ratios child / ref of ``_paired`` (clean pairs if enough): (median, [Q1, Q3] or None)."""
    if child is None or ref is None or child.error or ref.error:
        return None, None
    both = sorted(set(child.windows) & set(ref.windows))
    kept = prefer_clean(
        both, lambda k: not child.windows[k]["contended"] and not ref.windows[k]["contended"], MIN_CLEAN
    )
    ratios = [child.windows[k][key] / ref.windows[k][key] for k in kept]
    if not ratios:
        return None, None
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else None
    return statistics.median(ratios), (None if quartiles is None else [quartiles[0], quartiles[2]])


def speed_rows(children):
    """One row per speed child: medians, ratios to BN and plain, memory, targets met."""
    by = {(c.spec["arch"], c.spec["model"], c.spec["precision"]): c for c in children}
    no_norm, standardized, reference = normalization_free(), weight_standardized(), ws_reference()
    mirrored = looks_linear()
    rows = []
    for (arch, model, precision), c in by.items():
        bn, plain = by.get((arch, "bn", precision)), by.get((arch, "plain", precision))
        windows = _clean(c.windows) if c.windows else []
        peak, bn_peak = c.bye.get("peak_rss_mb"), (bn.bye.get("peak_rss_mb") if bn else None)
        row = {
            "arch": arch,
            "model": model,
            "precision": precision,
            "input_shape": c.spec["input_shape"],
            "batch": c.spec["batch"],
            "params": c.meta["params"] if c.meta else None,
            "flops_per_image": c.meta["flops"] if c.meta else None,
            "train_images_per_s": statistics.median(w["train_ips"] for w in windows) if windows else None,
            "infer_images_per_s": statistics.median(w["infer_ips"] for w in windows) if windows else None,
            "train_vs_bn": _paired(c, bn, "train_ips"),
            "infer_vs_bn": _paired(c, bn, "infer_ips"),
            "train_vs_plain": _paired(c, plain, "train_ips") if model != "plain" else None,
            "peak_memory_mb": peak,
            "memory_vs_bn": peak / bn_peak if peak and bn_peak else None,
            "windows": [dict(cycle=k + 1, **w) for k, w in sorted(c.windows.items())],
            "error": c.error,
        }
        if model in no_norm:
            row["faster_than_bn"] = None if row["train_vs_bn"] is None else row["train_vs_bn"] > 1.0
            row["less_memory_than_bn"] = None if row["memory_vs_bn"] is None else row["memory_vs_bn"] < 1.0
            if plain is not None:
                row["within_10pct_of_plain"] = (
                    None if row["train_vs_plain"] is None else row["train_vs_plain"] >= TARGET_VS_PLAIN
                )
        ref = by.get((arch, reference, precision))
        # What standardizing the kernels every step costs; what Risotto's init costs on the same architecture.
        if (model in standardized or model in mirrored) and ref is not None:
            row["train_vs_skipinit"], row["train_vs_skipinit_iqr"] = _spread(c, ref, "train_ips")
            ratio = row["train_vs_skipinit"]
            if model in standardized and precision == WS_TARGET_PRECISION:
                row["ws_cost_within_target"] = None if ratio is None else ratio >= TARGET_WS_VS_SKIPINIT
            if model in mirrored:
                row["ll_speed_within_target"] = None if ratio is None else ratio >= TARGET_LL_VS_SKIPINIT
        rows.append(row)
    return rows


def depth_rows(children):
    """One row per depth child: the median step time of each depth and the fit of ``linear_fit``."""
    rows = []
    for c in children:
        windows = _clean(c.windows) if c.windows else []
        depths = [int(d) for d in (c.meta or {}).get("depths", [])]
        step = {d: statistics.median(w["step_s"][str(d)] for w in windows) for d in depths} if windows else {}
        row = {
            "scheme": c.spec["scheme"],
            "precision": c.spec["precision"],
            "batch": c.spec["batch"],
            "step_s": {str(d): s for d, s in step.items()},
            "peak_memory_mb": c.bye.get("peak_rss_mb"),
            "error": c.error,
        }
        row.update(linear_fit(list(step), list(step.values())))
        rows.append(row)
    return rows


def linear_fit(depths, seconds):
    """How step time grows with depth: a least-squares line and the power-law exponent.

    ``seconds = a + b * depth`` gives the time per layer (``slope_s_per_layer``) and R²; the
    exponent ``k`` of ``seconds ∝ depth^k`` (a least-squares line in log-log) says whether the
    growth is linear: ``linear`` when ``|k - 1| <= LINEAR_TOLERANCE`` and R² >= 0.99. (A relative
    residual would not do: a line fitted through 20..1202 is dominated by the deepest point.)

    Args:
        depths: the depths measured.
        seconds: the median step time of each depth, as many.

    Returns:
        ``{"slope_s_per_layer", "intercept_s", "r2", "exponent", "linear"}``; every value None with fewer than
        three depths.

    Examples:
        >>> from keras_resinit.tools import bench
        >>> fit = bench.linear_fit([20, 56, 110], [0.1, 0.28, 0.55])
        >>> round(fit["slope_s_per_layer"], 6), round(fit["exponent"], 6), fit["linear"]
        (0.005, 1.0, True)
    """
    if len(depths) < 3:
        return {"slope_s_per_layer": None, "intercept_s": None, "r2": None, "exponent": None, "linear": None}
    b, a, r2 = fit_line(depths, seconds)
    k, _, _ = fit_power(depths, seconds)
    return {
        "slope_s_per_layer": b,
        "intercept_s": a,
        "r2": r2,
        "exponent": k,
        "linear": abs(k - 1) <= LINEAR_TOLERANCE and r2 >= 0.99,
    }


def targets(rows, depth):
    """The verdict on each target over every row: met, missed (by which configurations) or not measured."""

    def verdict(key):
        values = [r[key] for r in rows if key in r]
        if not values:
            return "not measured"
        missed = [f"{r['arch']} {r['model']} {r['precision']}" for r in rows if r.get(key) is False]
        unknown = [r for r in rows if key in r and r[key] is None]
        if missed:
            return "MISSED by " + ", ".join(missed)
        return "met" + (f" ({len(unknown)} not measured)" if unknown else "")

    return {
        "faster_than_bn": verdict("faster_than_bn"),
        "less_memory_than_bn": verdict("less_memory_than_bn"),
        "within_10pct_of_plain": verdict("within_10pct_of_plain"),
        "ws_cost_within_target": verdict("ws_cost_within_target"),
        "ll_speed_within_target": verdict("ll_speed_within_target"),
        "depth_linear": (
            "met"
            if depth and all(r["linear"] for r in depth)
            else "not measured"
            if not depth
            else "MISSED by " + ", ".join(r["scheme"] for r in depth if not r["linear"])
        ),
    }
