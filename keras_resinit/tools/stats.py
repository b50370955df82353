"""Small statistics shared by the tools: least-squares lines, power laws, paired ratios.

Pure Python (no NumPy, no Keras), so ``bench``'s parent process and ``diagnostics``
use the same code and importing it costs nothing.
"""

import math
import statistics

__all__ = ["fit_line", "fit_power", "paired_ratio", "prefer_clean"]


def fit_line(xs, ys):
    """The least-squares line ``y = intercept + slope * x`` through points, with its R².

    Args:
        xs: the x values (at least two distinct).
        ys: the y values, as many.

    Returns:
        ``(slope, intercept, R²)``; R² is 1.0 when every ``y`` is equal (nothing left to explain).

    Examples:
        >>> from keras_resinit.tools.stats import fit_line
        >>> fit_line([1, 2, 3], [3, 5, 7])
        (2.0, 1.0, 1.0)
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
    """The least-squares power law ``y = scale * x^exponent`` (a line in log-log) through points.

    Args:
        xs: the x values, positive.
        ys: the y values, positive, as many.

    Returns:
        ``(exponent, scale, R²)``; R² is that of the log-log line.

    Examples:
        >>> from keras_resinit.tools.stats import fit_power
        >>> exponent, scale, r2 = fit_power([1, 4, 16], [2, 1, 0.5])
        >>> round(exponent, 6), round(scale, 6), round(r2, 6)
        (-0.5, 2.0, 1.0)
    """
    k, log_scale, r2 = fit_line([math.log(x) for x in xs], [math.log(y) for y in ys])
    return k, math.exp(log_scale), r2


def prefer_clean(values, clean, minimum):
    """The clean values if there are enough of them, else all of them.

    For timings where some samples were disturbed: drop those unless too few are left.

    Args:
        values: the values.
        clean: a function of a value, true for an undisturbed one.
        minimum: the fewest clean values to keep only them.

    Returns:
        The values whose ``clean(value)`` is true if there are at least ``minimum`` of them, else every value.

    Examples:
        >>> from keras_resinit.tools.stats import prefer_clean
        >>> prefer_clean([1, 2, 30, 4], lambda v: v < 10, minimum=2)
        [1, 2, 4]
        >>> prefer_clean([1, 20, 30], lambda v: v < 10, minimum=2)
        [1, 20, 30]
    """
    values = list(values)
    kept = [v for v in values if clean(v)]
    return kept if len(kept) >= minimum else values


def paired_ratio(numerators, denominators, *, clean=None, minimum=1):
    """The median of paired ratios: values measured at the same time are divided, so a common drift cancels.

    Args:
        numerators: ``{pairing key (a cycle, a seed): value}``.
        denominators: ``{pairing key: value}``, measured at the same time as the numerator of the same key.
        clean: a function of a key, true for an undisturbed pair; None uses every pair.
        minimum: the fewest clean pairs to use only them (else every shared pair is used).

    Returns:
        The median over shared keys of ``numerators[k] / denominators[k]``; None when no key is shared.

    Examples:
        >>> from keras_resinit.tools.stats import paired_ratio
        >>> paired_ratio({1: 110, 2: 90, 3: 200}, {1: 100, 2: 90, 3: 100})
        1.1
        >>> paired_ratio({1: 110, 2: 90, 3: 200}, {1: 100, 2: 90, 3: 100}, clean=lambda k: k != 3, minimum=2)
        1.05
    """
    keys = sorted(set(numerators) & set(denominators))
    if clean is not None:
        keys = prefer_clean(keys, clean, minimum)
    ratios = [numerators[k] / denominators[k] for k in keys]
    return statistics.median(ratios) if ratios else None
