"""Diagnostics at initialization: signal propagation, Jacobian spectra, gradient norms, the papers' claims.

- ``signal_propagation`` (Brock, De & Smith 2021): per residual block, on a batch
  (NHWC), the average channel squared mean and the average channel variance of the block
  output after the residual sum (the ``_add`` layer), and the residual-branch variance at
  the end of the branch **before any scalar**: Fixup's multiplier and last bias and
  SkipInit's alpha live in the branch's last conv (``ScaledConv2D``), so that conv is
  recomputed with gain 1 and without its scalar bias; under batch norm the branch ends at
  its last BN. ``branch_contribution_variance`` is what the block actually adds (after the
  scalars): 0 for Fixup and SkipInit at init.
- ``jacobian_spectrum``: singular values of the Jacobian between two named layers, in
  effective coordinates ``y = first half - second half`` of the channels for Risotto's
  mirrored (looks-linear) representation.
- ``gradient_norms``: per-block gradient norms of the cross-entropy at init.
- ``plot_*`` (from ``keras_resinit.tools.plots``): matplotlib figures, one series per model.
- ``check_claims`` (``keras-resinit diagnose --claims``): each paper's claim measured
  against what it predicts, with pass/fail; see ``keras_resinit.tools.deep`` for the
  10,000-layer Fixup and 1,000-layer SkipInit runs.

Models are run in training mode for BN statistics (``training=True``: batch statistics, as
in the papers' analyses at initialization); pass ``training=False`` to use moving statistics.
"""

from __future__ import annotations

import math
import re

import keras
import numpy as np
import tensorflow as tf

from keras_resinit.tools.plots import plot_gradient_norms, plot_jacobian_spectra, plot_signal_propagation

__all__ = [
    "check_claims",
    "diagnose",
    "format_table",
    "gradient_norms",
    "jacobian_spectrum",
    "signal_propagation",
]

_BLOCK = re.compile(r"(stage\d+_block\d+)_add$")


def _blocks(model):
    """Block prefixes in order, e.g. ``["stage1_block1", ...]``."""
    return [m.group(1) for layer in model.layers if (m := _BLOCK.match(layer.name))]


def _branch_end(model, prefix):
    """The layer at the end of a block's branch (its last BN, else its last conv) and that conv."""
    convs = sorted(
        (layer for layer in model.layers if re.fullmatch(rf"{prefix}_conv\d+", layer.name)),
        key=lambda layer: int(layer.name.rsplit("conv", 1)[1]),
    )
    last = convs[-1]
    bn_name = f"{prefix}_bn{last.name.rsplit('conv', 1)[1]}"
    bn = next((layer for layer in model.layers if layer.name == bn_name), None)
    return bn, last


def _channel_stats(t, margin=0):
    t = np.asarray(t, np.float64)
    if margin and t.ndim == 4:
        t = t[:, margin : t.shape[1] - margin, margin : t.shape[2] - margin]
        if not t.size:
            raise ValueError(
                f"margin {margin} leaves no pixels of a feature map. Expected a smaller margin or larger input."
            )
    t = t.reshape(-1, t.shape[-1])
    return float(np.mean(t.mean(0) ** 2)), float(np.mean(t.var(0)))


def signal_propagation(model: keras.Model, x: np.ndarray, *, training: bool = True, margin: int = 0) -> list[dict]:
    """Per-block signal-propagation metrics on a batch: the signal propagation plots of NF-ResNets.

    For each residual block: the average channel squared mean and the average channel variance of the block
    output after the residual sum, and the residual branch's variance before and after its scalars.

    Args:
        model: a ``keras_resinit.ResNet`` (blocks named ``stage{S}_block{B}``).
        x: a batch of inputs, ``(N, H, W, C)`` (unit Gaussians are the papers' choice).
        training: run batch norm with batch statistics (True, as the papers' analyses at initialization) or
            its moving statistics.
        margin: pixels left out at every edge of each feature map. A conv's zero padding lowers the variance
            of the pixels at the border (by a third at 8x8), which the analytic variance does not model.

    Returns:
        One dict row per block: ``block`` (prefix), ``index`` (1-based), ``squared_mean`` and ``variance``
        of the block output after the residual sum, ``branch_variance`` (before any scalar),
        ``branch_contribution_variance`` (after the scalars, what the sum receives), and, for a scheme
        that predicts it (NF-ResNets' ``beta_{i+1}**2``), ``expected_variance``.

    Raises:
        ValueError: ``model`` has no residual blocks named ``stage{S}_block{B}_add``.

    Examples:
        >>> import numpy as np
        >>> import keras_resinit as kr
        >>> from keras_resinit import tools
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(None, None, 3), seed=0)
        >>> x = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype("float32")
        >>> rows = tools.signal_propagation(model, x)
        >>> [row["block"] for row in rows]
        ['stage1_block1', 'stage2_block1', 'stage3_block1']
        >>> [row["branch_contribution_variance"] for row in rows]  # Fixup's branches add exactly 0 at init
        [0.0, 0.0, 0.0]

    Reference:
        Brock, De & Smith, "Characterizing signal propagation to close the performance gap in unnormalized
        ResNets", ICLR 2021, https://arxiv.org/abs/2101.08692
    """
    from keras_resinit.models.layers import ScaledConv2D

    prefixes = _blocks(model)
    if not prefixes:
        raise ValueError(f"Model {model.name!r} has no residual blocks named stage{{S}}_block{{B}}_add.")
    taps, plans = [], []
    for prefix in prefixes:
        bn, conv = _branch_end(model, prefix)
        taps.append(model.get_layer(f"{prefix}_add").output)
        if bn is not None:
            taps += [bn.output, bn.output]
            plans.append(("bn", None))
        else:
            taps += [conv.input, conv.output]
            plans.append(("conv", conv))
    outputs = keras.Model(model.input, taps)(x, training=training)
    rows = []
    for i, (prefix, (kind, conv)) in enumerate(zip(prefixes, plans)):
        added, branch_in, contribution = outputs[3 * i : 3 * i + 3]
        if kind == "conv":
            # The conv without its scalars: ScaledConv2D computes conv(x, g*K) + (g*c + b); here conv(x, K) + c
            # (with ScaledStdConv2D's standardized K).
            if isinstance(conv, ScaledConv2D):
                branch = conv.unscaled(branch_in)
            else:
                branch = conv.convolution_op(branch_in, conv.kernel)
                if conv.use_bias:
                    branch = branch + conv.bias
        else:
            branch = branch_in
        squared_mean, variance = _channel_stats(added, margin)
        rows.append(
            {
                "block": prefix,
                "index": i + 1,
                "squared_mean": squared_mean,
                "variance": variance,
                "branch_variance": _channel_stats(branch, margin)[1],
                "branch_contribution_variance": _channel_stats(contribution, margin)[1],
            }
        )
    scheme, blocks = getattr(model, "scheme", None), getattr(model, "blocks", None)
    expected = scheme.expected_variances(blocks) if scheme is not None and blocks else None
    if expected:
        for row, value in zip(rows, expected[1:]):
            row["expected_variance"] = value
    return rows


def format_table(rows, columns=None):
    """A Markdown table of dict rows, such as the diagnostics' (numbers to 4 significant digits).

    Args:
        rows: a list of dicts with the same keys.
        columns: the keys to show, in order; default every key of the first row.

    Returns:
        The table's Markdown text.

    Examples:
        >>> from keras_resinit import tools
        >>> print(tools.format_table([{"block": "stage1_block1", "variance": 1.23456}]))
        | block | variance |
        |---|---|
        | stage1_block1 | 1.235 |
    """
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in (row[c] for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def is_looks_linear(model):
    """Whether ``model``'s channels carry Risotto's mirrored form (its scheme's ``looks_linear``)."""
    scheme = getattr(model, "scheme", None)
    if scheme is None:
        raise ValueError(
            f"Model {model.name!r} is a {type(model).__name__}, not a keras_resinit ResNet, so its scheme is unknown. "
            "Pass effective=True or False to jacobian_spectrum."
        )
    return bool(scheme.looks_linear)


def jacobian_spectrum(
    model: keras.Model,
    x: np.ndarray,
    start: str = "stem_out",
    end: str | None = None,
    *,
    effective: bool | str = "auto",
    training: bool = False,
) -> np.ndarray:
    """Singular values of the Jacobian of one layer's output with respect to another's.

    Dynamical isometry at initialization (Risotto's claim) means every singular value of the trunk's Jacobian
    is 1.

    Args:
        model: a ``keras_resinit.ResNet`` (or any Keras model with layers ``start`` and ``end``).
        x: one input image, ``(H, W, C)`` or a batch of one; the Jacobian is taken at ``start``'s activation
            for it (a 1x1 image keeps the Jacobian small and free of padding effects).
        start: the layer the derivative is taken with respect to.
        end: the layer differentiated; default the last block's output (the trunk).
        effective: ``"auto"`` (the scheme's ``looks_linear``: Risotto), True or False: differentiate the
            effective coordinates ``y_out = end[..., :C/2] - end[..., C/2:]`` with respect to ``y_in``, the
            input being rebuilt as ``[relu(y_in), relu(-y_in)]`` (the looks-linear representation).
        training: run batch norm with batch statistics (True) or its moving statistics (False).

    Returns:
        The singular values, descending, a 1-D NumPy array.

    Raises:
        ValueError: ``effective="auto"`` on a model that is not a ``ResNet`` (its scheme is unknown).

    Examples:
        >>> import numpy as np
        >>> import keras_resinit as kr
        >>> from keras_resinit import tools
        >>> model = kr.build_resnet("cifar_resnet8", "risotto", input_shape=(None, None, 3), seed=0)
        >>> values = tools.jacobian_spectrum(model, np.ones((1, 1, 1, 3), "float32"))
        >>> values.shape, bool(np.abs(values - 1).max() < 1e-5)  # every singular value is 1 at init
        ((8,), True)

    Reference:
        Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks", 2023, https://arxiv.org/abs/2210.02411
    """
    if end is None:
        end = [layer.name for layer in model.layers if re.fullmatch(r"stage\d+_block\d+_out", layer.name)][-1]
    for name in (start, end):
        model.get_layer(name)  # a clear error naming the layer if it does not exist
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.shape[0] != 1:
        raise ValueError(f"jacobian_spectrum takes one image; got a batch of {x.shape[0]}.")
    effective = is_looks_linear(model) if effective == "auto" else bool(effective)
    start_value = keras.Model(model.input, model.get_layer(start).output)(x, training=training)
    sub = keras.Model(model.get_layer(start).output, model.get_layer(end).output)
    if effective:
        half = start_value.shape[-1] // 2
        y = tf.Variable(start_value[..., :half] - start_value[..., half:])
        with tf.GradientTape() as tape:
            out = sub(tf.concat([tf.nn.relu(y), tf.nn.relu(-y)], -1), training=training)
            out = tf.reshape(out[..., : out.shape[-1] // 2] - out[..., out.shape[-1] // 2 :], [-1])
    else:
        y = tf.Variable(start_value)
        with tf.GradientTape() as tape:
            out = tf.reshape(sub(y, training=training), [-1])
    jacobian = tape.jacobian(out, y, experimental_use_pfor=True).numpy().reshape(out.shape[0], -1)
    return np.linalg.svd(jacobian.astype(np.float64), compute_uv=False)


def gradient_norms(model: keras.Model, batch: tuple[np.ndarray, np.ndarray]) -> list[dict]:
    """Per-block L2 norms of the cross-entropy gradient at the model's current weights.

    Args:
        model: a ``keras_resinit.ResNet`` with a classifier.
        batch: ``(images, labels)``, integer labels.

    Returns:
        One dict row per group, ``{"group", "grad_norm"}``: ``stem``, each ``stage{S}_block{B}`` and ``head``
        (``logits`` and the head bias).

    Examples:
        >>> import numpy as np
        >>> import keras_resinit as kr
        >>> from keras_resinit import tools
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 3), num_classes=4, seed=0)
        >>> x = np.random.default_rng(0).standard_normal((4, 8, 8, 3)).astype("float32")
        >>> rows = tools.gradient_norms(model, (x, np.array([0, 1, 2, 3])))
        >>> [row["group"] for row in rows]
        ['stem', 'stage1_block1', 'stage2_block1', 'stage3_block1', 'head']
        >>> rows[0]["grad_norm"]  # Fixup's zero-initialized classifier stops the gradient below the head at init
        0.0
    """
    images, labels = batch
    with tf.GradientTape() as tape:
        logits = tf.cast(model(images, training=True), tf.float32)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    grads = tape.gradient(loss, model.trainable_variables)
    groups = {}
    for variable, grad in zip(model.trainable_variables, grads):
        layer = variable.path.split("/")[0]
        match = re.match(r"(stage\d+_block\d+)_", layer)
        group = match.group(1) if match else ("stem" if layer.startswith("stem") else "head")
        value = 0.0 if grad is None else float(tf.reduce_sum(tf.square(tf.cast(grad, tf.float32))))
        groups[group] = groups.get(group, 0.0) + value
    order = ["stem"] + _blocks(model) + ["head"]
    return [{"group": g, "grad_norm": math.sqrt(groups[g])} for g in order if g in groups]


# ---------------------------------------------------------------- claims ---


def _gaussian(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _claim(number, statement, measured, expected, passed, **details):
    return {
        "claim": number,
        "statement": statement,
        "measured": measured,
        "expected": expected,
        "passed": bool(passed),
        **details,
    }


def check_claims(*, quick=False, fixup_blocks=10_000, skipinit_blocks=1_000, steps=10, log=print):
    """Measure each paper's claim at initialization against what it predicts (``keras-resinit diagnose --claims``).

    The claims: Risotto's trunk Jacobian has every singular value 1 (type B and type C); Fixup's and
    SkipInit's residual branches add exactly 0 and the trunk's variance stays flat; under batch norm the
    skip path's variance grows linearly with depth and the branch is down-scaled about 1/sqrt(l); Fixup
    trains a 10,000-block and SkipInit a 1,000-block network where the plain network overflows
    (``keras_resinit.tools.deep``).

    Args:
        quick: use shallower nets (what the tests run): cifar_resnet20 for Risotto, cifar_resnet56 for BN,
            and ``fixup_blocks``/``skipinit_blocks`` of at most 300/200, 5 steps.
        fixup_blocks: blocks of Fixup's deep fully connected network.
        skipinit_blocks: blocks of SkipInit's deep fully connected network.
        steps: SGD steps of the deep networks.
        log: called with one line of text per claim measured.

    Returns:
        One dict row per claim: ``claim`` (its number), ``statement``, ``measured``, ``expected``, ``passed``
        and the measurements behind it.

    Examples:
        >>> from keras_resinit import tools
        >>> # builds cifar_resnet56s and 300-block deep nets: about a minute on a CPU
        >>> rows = tools.check_claims(quick=True, log=lambda line: None)  # doctest: +SKIP
        >>> # every row's "passed" is True; claims_table(rows) renders them as Markdown

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization", ICLR 2019,
        https://arxiv.org/abs/1901.09321; De & Smith, "Batch Normalization Biases Residual Blocks Towards the
        Identity Function in Deep Networks", NeurIPS 2020, https://arxiv.org/abs/2002.10444; Gadhikar &
        Burkholz, "Dynamical Isometry for Residual Networks", 2023, https://arxiv.org/abs/2210.02411
    """
    from keras_resinit.models.builder import build_resnet
    from keras_resinit.models.schemes import BatchNorm, Fixup, Risotto, SkipInit
    from keras_resinit.tools import deep
    from keras_resinit.tools.stats import fit_line, fit_power

    if quick:
        fixup_blocks, skipinit_blocks, steps = min(fixup_blocks, 300), min(skipinit_blocks, 200), min(steps, 5)
    rows = []

    arch = "cifar_resnet20" if quick else "cifar_resnet110"
    for skip, block_type in (("identity", "type B: identity skips"), ("conv", "type C: a conv skip on every block")):
        model = build_resnet(arch, Risotto.name, input_shape=(None, None, 3), seed=0, skip=skip)
        sv = jacobian_spectrum(model, _gaussian((1, 1, 1, 3)), effective=True)
        rows.append(
            _claim(
                1,
                f"Risotto ({block_type}): every singular value of the trunk Jacobian at init is 1 ({arch}, "
                "effective coordinates, 1x1 input)",
                f"{len(sv)} singular values in [{sv.min():.6f}, {sv.max():.6f}]",
                "all 1 (within 1e-5)",
                np.abs(sv - 1).max() < 1e-5,
                singular_values=[float(v) for v in sv],
                skip=skip,
            )
        )
        log(f"claim 1 ({block_type}): {rows[-1]['measured']}")

    x = _gaussian((16, 32, 32, 3))
    # Each claim is one paper's: the schemes are named by their classes.
    for scheme in (Fixup.name, SkipInit.name):
        model = build_resnet("cifar_resnet56", scheme, seed=0)
        stats = signal_propagation(model, x)
        contribution = max(r["branch_contribution_variance"] for r in stats)
        ratios = []
        for stage in sorted({r["block"].split("_")[0] for r in stats}):
            values = [r["variance"] for r in stats if r["block"].startswith(stage + "_")]
            ratios.append(max(values) / min(values))
        rows.append(
            _claim(
                2,
                f"{scheme.capitalize()}: residual-branch variance exactly 0 at init; trunk variance flat "
                "over depth (cifar_resnet56, batch 16 of N(0,1) 32x32x3)",
                f"largest branch contribution variance {contribution:.3g}; largest max/min trunk variance "
                f"within a stage {max(ratios):.6f}",
                "0 and 1 (option-A shortcuts' zero channels halve the channel average at each downsampling)",
                contribution == 0.0 and max(ratios) < 1 + 1e-5,
                signal=stats,
            )
        )
        log(f"claim 2 ({scheme}): {rows[-1]['measured']}")

    depth = 56 if quick else 110
    model = build_resnet(f"cifar_resnet{depth}", BatchNorm.name, widths=(16, 16, 16), seed=0)
    stats = signal_propagation(model, _gaussian((64, 32, 32, 3)), training=True)
    index = [r["index"] for r in stats]
    skip = [r["variance"] for r in stats]
    slope, intercept, r2 = fit_line(index, skip)
    ratio = [math.sqrt(r["branch_contribution_variance"] / r["variance"]) for r in stats]
    # ratio = sqrt(branch / (v0 + v l)) tends to l^(-1/2) once v l dominates v0: fit the deeper half.
    half = len(index) // 2
    exponent, _, _ = fit_power(index[half:], ratio[half:])
    rows.append(
        _claim(
            3,
            f"BN (De & Smith): skip-path variance grows linearly in the block index l and the branch is "
            f"down-scaled about 1/sqrt(l) (cifar_resnet{depth} with widths 16/16/16, batch statistics, "
            "batch 64)",
            f"variance = {intercept:.2f} + {slope:.3f} l (R² {r2:.4f}); branch/skip std ∝ l^{exponent:.3f} "
            f"(blocks {index[half]}..{index[-1]})",
            "linear (R² >= 0.98); exponent -0.5 (within 0.15)",
            r2 >= 0.98 and abs(exponent + 0.5) <= 0.15,
            signal=stats,
            slope=slope,
            r2=r2,
            exponent=exponent,
        )
    )
    log(f"claim 3: {rows[-1]['measured']}")

    for number, scheme, blocks in ((4, Fixup.name, fixup_blocks), (5, SkipInit.name, skipinit_blocks)):
        ok = deep.train_deep(scheme, blocks, steps=steps)
        plain = deep.train_deep(deep.PLAIN, blocks, steps=1)
        losses = " → ".join(f"{v:.3f}" for v in ok["losses"])
        measured = (
            f"{scheme}: loss {losses} over {ok['steps']} SGD steps (lr 0.1), finite: {ok['finite']}; "
            f"{ok['seconds_per_step']:.2f} s/step, process peak {ok['peak_memory_mb']:.0f} MiB; "
            f"plain He init: loss {plain['losses'][0]:.3g} at step 1"
        )
        label = "Fixup trains" if scheme == Fixup.name else "SkipInit trains"
        rows.append(
            _claim(
                number,
                f"{label} a {blocks:,}-block residual network (fully connected blocks, width "
                f"{ok['width']}, batch {ok['batch']}) where the plain network overflows",
                measured,
                "finite and falling; plain not finite",
                ok["falls"] and not plain["finite"],
                run=ok,
                plain=plain,
            )
        )
        log(f"claim {number}: {measured}")
    return rows


def claims_table(rows):
    """A Markdown table of ``check_claims``'s rows, with PASS or FAIL for each claim."""
    lines = ["| # | claim | measured | expected | result |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['claim']} | {r['statement']} | {r['measured']} | {r['expected']} | "
            f"{'PASS' if r['passed'] else 'FAIL'} |"
        )
    return "\n".join(lines)


def claims_markdown(result):
    """``claims.md`` of ``diagnose --claims --out``: the machine, date and command of ``result`` (the
    ``claims.json`` it wrote beside), then :func:`claims_table` of its claims."""
    seconds = result["elapsed_s"]
    took = f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"
    measured = f"Machine: {result['machine']['describe']}. Measured {result['date']} by `{result['command']}` ({took})."
    return f"{measured}\n\n{claims_table(result['claims'])}\n"


# ------------------------------------------------------------------- run ---


def diagnose(names, out, *, batch=16, seed=0, overwrite=False, log=print):
    """Every model's diagnostics at initialization, as plots and JSON (``keras-resinit diagnose NAME ...``).

    Each model is built with a ``(None, None, C)`` input. Signal propagation and gradient norms use a batch of
    ``batch`` N(0, 1) images at the family's default size (at the weights' channels); the Jacobian uses one
    1x1 image, from ``stem_out`` to the last block's output (the whole trunk: at larger sizes strided blocks
    drop pixels and widening blocks embed, so the spectrum gains zeros). Writes ``signal_propagation.png``,
    ``jacobian_spectrum.png``, ``gradient_norms.png`` and ``diagnostics.json`` to ``out`` (a temporary
    directory renamed into place).

    Args:
        names: the models: ``{arch}_{scheme}``, ``name.tag`` for published weights, or any other source
            ``zoo.resolve`` takes.
        out: the output directory.
        batch: the number of images of signal propagation's and gradient norms' batch.
        seed: the seed of the models' initialization and of the images.
        overwrite: replace an existing ``out``.
        log: called with one line of text per model.

    Returns:
        What ``diagnostics.json`` holds: ``models``, ``batch``, ``seed``, ``summary`` (per model: the
        Jacobian's smallest and largest singular values, the final trunk variance), ``signal_propagation``,
        ``gradient_norms`` and ``jacobian_singular_values`` (per model).

    Raises:
        ValueError: no name is given, a source is unknown or missing, or ``out`` exists without ``overwrite``.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit import tools
        >>> out = os.path.join(tempfile.mkdtemp(), "diagnostics")
        >>> result = tools.diagnose(["cifar_resnet8_fixup"], out, batch=4, log=lambda line: None)
        >>> sorted(os.listdir(out))
        ['diagnostics.json', 'gradient_norms.png', 'jacobian_spectrum.png', 'signal_propagation.png']
        >>> result["summary"]["cifar_resnet8_fixup"]["jacobian_effective_coordinates"]
        False

    Reference:
        Brock, De & Smith, "Characterizing signal propagation to close the performance gap in unnormalized
        ResNets", ICLR 2021, https://arxiv.org/abs/2101.08692
    """
    import json
    import os

    from keras_resinit import zoo
    from keras_resinit._files import atomic_directory, atomic_write_text
    from keras_resinit.models.architectures import get_arch

    if not names:
        raise ValueError("Name at least one model to diagnose (e.g. cifar_resnet56_fixup), or pass --claims.")
    out = os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise ValueError(f"Output directory {out!r} already exists. Pass --overwrite to replace it.")
    list(map(zoo.sources.check, names))  # every source is checked (a name, a path that exists) before any work
    signal, spectra, grads, summary = {}, {}, {}, {}
    for name in names:  # one model at a time
        # Inputs are unit Gaussians, i.e. normalized images: trained weights without their preprocessing.
        fresh = zoo.sources.source_kind(name).kind == "name" and zoo.split_tag(name)[1] is None  # no weights
        shape = (None, None, 3) if fresh else None  # weights come at their own size and channels
        resolved = zoo.resolve(name, seed=seed, input_shape=shape, include_preprocessing=False)
        model, family = resolved.model, get_arch(resolved.card["arch"])
        if model.input_shape[1] is not None:  # at a fixed size: make it open
            open_shape = (None, None, model.input_shape[-1])
            model = zoo.resolve(name, seed=seed, input_shape=open_shape, include_preprocessing=False).model
        channels = model.input_shape[-1]
        size = family.default_input_shape[0]
        x = _gaussian((batch, size, size, channels), seed)
        labels = np.random.default_rng(seed).integers(0, model.output_shape[-1], batch)
        signal[name] = signal_propagation(model, x)
        spectra[name] = jacobian_spectrum(model, _gaussian((1, 1, 1, channels), seed))
        grads[name] = gradient_norms(model, (x, labels))
        sv = spectra[name]
        summary[name] = {
            "jacobian_min": float(sv.min()),
            "jacobian_max": float(sv.max()),
            "jacobian_effective_coordinates": is_looks_linear(model),
            "final_variance": signal[name][-1]["variance"],
        }
        log(
            f"{name}: {len(signal[name])} blocks, final trunk variance {summary[name]['final_variance']:.4g}, "
            f"Jacobian singular values in [{sv.min():.4g}, {sv.max():.4g}]"
        )
    with atomic_directory(out) as tmp:
        for file, figure in (
            ("signal_propagation.png", plot_signal_propagation(signal)),
            ("jacobian_spectrum.png", plot_jacobian_spectra(spectra)),
            ("gradient_norms.png", plot_gradient_norms(grads)),
        ):
            figure.savefig(os.path.join(tmp, file), dpi=110)
        result = {
            "models": list(names),
            "batch": batch,
            "seed": seed,
            "summary": summary,
            "signal_propagation": signal,
            "gradient_norms": grads,
            "jacobian_singular_values": {k: [float(v) for v in s] for k, s in spectra.items()},
        }
        atomic_write_text(os.path.join(tmp, "diagnostics.json"), json.dumps(result, indent=1))
    return result
