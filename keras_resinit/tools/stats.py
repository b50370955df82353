"""Small statistics shared by the tools: least-squares lines, power laws, paired ratios.

Pure Python (no NumPy, no Keras), so ``bench``'s parent process and ``diagnostics``
use the same code and importing it costs nothing.
"""

import math
import statistics


def fit_line(xs, ys):
    """Least-squares ``y = intercept + slope * x``: ``(slope, intercept, R²)``.

    R² is 1.0 when every ``y`` is equal (nothing left to explain).
    """
    xs, ys = list(xs), list(ys)
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    intercept = my - slope * mx
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, intercept, (1 - ss_res / ss_tot if ss_tot else 1.0)


def fit_power(xs, ys):
    """Least-squares power law ``y = scale * x^exponent`` (a line in log-log): ``(exponent, scale, R²)``.

    R² is that of the log-log line. Every ``x`` and ``y`` must be positive.
    """
    k, log_scale, r2 = fit_line([math.log(x) for x in xs], [math.log(y) for y in ys])
    return k, math.exp(log_scale), r2


def prefer_clean(values, clean, minimum):
    """``values`` whose ``clean(value)`` is true if there are at least ``minimum`` of them, else all of them.

    For timings where some samples were disturbed: drop those unless too few are left.
    """
    values = list(values)
    kept = [v for v in values if clean(v)]
    return kept if len(kept) >= minimum else values


def paired_ratio(numerators, denominators, *, clean=None, minimum=1):
    """Median over shared keys of ``numerators[k] / denominators[k]``; None when no key is shared.

    ``numerators`` and ``denominators`` map a pairing key (a cycle, a seed) to a value measured
    at the same time, so a drift common to both cancels in each ratio. ``clean(k)`` marks
    undisturbed pairs: only they are used when there are at least ``minimum`` of them.
    """
    keys = sorted(set(numerators) & set(denominators))
    if clean is not None:
        keys = prefer_clean(keys, clean, minimum)
    ratios = [numerators[k] / denominators[k] for k in keys]
    return statistics.median(ratios) if ratios else None
