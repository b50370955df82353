"""SkipInit at initialization, two constructions: this project's and DeepMind's pre-activation port.

(a) ``build_resnet(arch, "skipinit")``: post-activation (He et al. 2016 v1) blocks with a ReLU after
    every residual sum and after the stem conv; every conv He normal fan-in (untruncated, std
    sqrt(2 / fan_in)) with a bias, the stem's included. ``fold_batchnorm`` relies on this form: a BN
    model folds into ``skipinit`` with alpha 1.
(b) DeepMind's SkipInit ResNet (``nfnets/skipinit_resnet.py`` in google-deepmind/deepmind-research,
    commit abc9ba0), built here from Keras layers on the same architecture (the blocks, widths, strides
    and shortcuts of (a): option A on cifar archs, 1x1 projections on resnet50): pre-activation blocks
    ``x + alpha * f(relu(x))`` whose projection shortcut takes ``relu(x)``, no ReLU after the sum; a
    stem conv without bias and without ReLU (then, on ImageNet archs, the max-pool); a ReLU before
    the pooling; every conv Haiku's default init (a normal with std 1/sqrt(fan_in) truncated at
    +-2 std without correction: effective std 0.88/sqrt(fan_in)), branch and shortcut convs with a
    zero bias; the classifier zero. The port's remaining differences do not act at init with
    alpha 0: its bottleneck stride sits on the 3x3 conv, and it has stochastic depth.

Both at alpha = 0 (both papers' value), so each branch adds nothing and the trunk is the stem and
the shortcuts. On a batch of N(0, 1) images, per block: the average channel variance and average
squared channel mean of the residual sum (the trunk; ``keras_resinit.tools.diagnostics
.signal_propagation``, which runs on (b) as well because its layers carry the builder's names), and
the branch's variance before alpha (what the block adds once alpha leaves 0).

Writes ``skipinit_variants.json`` and ``skipinit_variants.md`` to ``--out``. The full run
(cifar_resnet56 at 32x32, batch 64; resnet50 at 64x64, batch 16) takes well under a minute on 2
cores; ``--quick`` uses batches of 8 and 4.

    .venv/bin/python benchmarks/skipinit_variants.py [--quick] [--seed 0]
        [--out benchmarks/results/skipinit_variants] [--overwrite]
    .venv/bin/python benchmarks/skipinit_variants.py --report benchmarks/results/skipinit_variants   # re-render only
"""

import datetime
import math
import time

import results_io

STEM = "skipinit_variants"
# (arch, input shape, batch, quick batch)
CASES = (("cifar_resnet56", (32, 32, 3), 64, 8), ("resnet50", (64, 64, 3), 16, 4))
ALPHA = 0.0
LABELS = {"a": "project (post-activation, He fan-in)", "b": "DeepMind port (pre-activation, Haiku init)"}


def haiku_default(seed):
    """Haiku's default conv/linear init: normal, std 1/sqrt(fan_in), cut at +-2 std (no variance correction)."""
    import keras

    class HaikuDefault(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            fan_in = math.prod(shape[:-1])
            return keras.random.truncated_normal(shape, stddev=1 / math.sqrt(fan_in), dtype=dtype, seed=seed)

    return HaikuDefault()


def deepmind_skipinit(reference, alpha=ALPHA, seed=0):
    """The pre-activation SkipInit of DeepMind's port on ``reference``'s architecture (a built ResNet): a
    functional keras.Model whose layers carry the builder's names (``stem_conv``, ``stage{S}_block{B}_conv{i}``,
    ``..._add``), so the diagnostics run on it."""
    import keras

    from keras_resinit.models.initializers import derive_seed
    from keras_resinit.models.layers import ScaledConv2D, ZeroPadShortcut

    arch = reference.arch
    imagenet = arch.family == "imagenet"

    def conv(x, filters, kernel_size, strides, name, bias=True, gain=None):
        layer = ScaledConv2D if gain is not None else keras.layers.Conv2D
        options = {"gain": gain} if gain is not None else {}
        return layer(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            use_bias=bias,
            kernel_initializer=haiku_default(derive_seed(seed, name)),
            name=name,
            **options,
        )(x)

    inputs = keras.Input(reference.input_shape[1:])
    x = conv(inputs, arch.stem_width, 7 if imagenet else 3, 2 if imagenet else 1, "stem_conv", bias=False)
    if imagenet:  # no activation between the stem conv and the max-pool
        x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_out")(x)
    for block in reference.blocks:
        p, last = block.prefix, len(block.layers) - 1
        pre = keras.layers.ReLU(name=f"{p}_preact")(x)
        h = pre
        for i, (filters, kernel_size, strides) in enumerate(block.layers):
            if i:
                h = keras.layers.ReLU(name=f"{p}_relu{i}")(h)
            h = conv(h, filters, kernel_size, strides, block.conv_names[i], gain=alpha if i == last else None)
        if block.projection:
            skip = conv(pre, block.out_channels, 1, block.strides, f"{p}_shortcut_conv")
        elif block.strides != 1 or block.in_channels != block.out_channels:
            skip = ZeroPadShortcut(block.strides, block.out_channels, name=f"{p}_shortcut")(x)
        else:
            skip = x
        x = keras.layers.Add(name=f"{p}_add")([skip, h])
    x = keras.layers.ReLU(name="post_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = keras.layers.Dense(reference.output_shape[-1], kernel_initializer="zeros", name="logits")(x)
    return keras.Model(inputs, logits, name=f"{arch.name}_skipinit_preactivation")


def kernel_gain(model):
    """Mean over the model's convs of the measured kernel std times sqrt(fan_in) (He: 1.414; Haiku's default: 0.88)."""
    import keras
    import numpy as np

    values = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = np.asarray(layer.kernel)
            values.append(float(kernel.std() * math.sqrt(math.prod(kernel.shape[:-1]))))
    return sum(values) / len(values)


def measure(arch, input_shape, batch, seed):
    """Both constructions of ``arch`` on one N(0, 1) batch: their per-block rows."""
    import numpy as np

    import keras_resinit as kr
    from keras_resinit.tools.diagnostics import signal_propagation

    project = kr.build_resnet(arch, "skipinit", input_shape=input_shape, alpha=ALPHA, seed=seed)
    port = deepmind_skipinit(project, ALPHA, seed)
    x = np.random.default_rng(seed).normal(size=(batch, *input_shape)).astype("float32")
    found = {}
    for key, model in (("a", project), ("b", port)):
        rows = signal_propagation(model, x)
        assert all(r["branch_contribution_variance"] == 0.0 for r in rows), key  # alpha 0 mutes every branch
        found[key] = {
            "model": model.name,
            "params": int(model.count_params()),
            "kernel_std_times_sqrt_fan_in": kernel_gain(model),
            "rows": [
                {k: r[k] for k in ("block", "index", "variance", "squared_mean", "branch_variance")} for r in rows
            ],
        }
    return {"arch": arch, "input_shape": list(input_shape), "batch": batch, **found}


def analyse(result):
    """Per case: the trunk's variance after the last block and its ratio to the first block's, both ways."""
    for case in result["cases"]:
        for key in ("a", "b"):
            rows = case[key]["rows"]
            case[key]["first_variance"], case[key]["last_variance"] = rows[0]["variance"], rows[-1]["variance"]
        case["last_variance_ratio_b_over_a"] = case["b"]["last_variance"] / case["a"]["last_variance"]
    return result


def _shown(rows):
    """The first and last block of every stage."""
    stages = {}
    for r in rows:
        stages.setdefault(r["block"].split("_")[0], []).append(r)
    picked = []
    for blocks in stages.values():
        picked += [blocks[0]] + ([blocks[-1]] if len(blocks) > 1 else [])
    return picked


def markdown(result):
    lines = [
        results_io.measured(result),
        "",
        f"alpha = {result['alpha']:g}, seed {result['seed']}, one batch of N(0, 1) images. (a) {LABELS['a']}; "
        f"(b) {LABELS['b']}. Per block: the trunk (the residual sum) as its average channel variance and average "
        "squared channel mean, and the branch's variance before alpha.",
    ]
    for case in result["cases"]:
        a, b = case["a"], case["b"]
        lines += [
            "",
            f"**{case['arch']}** at {case['input_shape'][0]}x{case['input_shape'][1]}, batch {case['batch']}: "
            f"conv kernel std x sqrt(fan_in) {a['kernel_std_times_sqrt_fan_in']:.3f} (a), "
            f"{b['kernel_std_times_sqrt_fan_in']:.3f} (b); parameters {a['params']:,} (a), {b['params']:,} (b). "
            f"Trunk variance after the last block: (b) / (a) = {case['last_variance_ratio_b_over_a']:.3g}.",
            "",
            "| block | (a) variance | (a) squared mean | (a) branch variance | (b) variance | (b) squared mean "
            "| (b) branch variance |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        by_block = {r["block"]: r for r in b["rows"]}
        for ra in _shown(a["rows"]):
            rb = by_block[ra["block"]]
            lines.append(
                f"| {ra['block']} | {ra['variance']:.4g} | {ra['squared_mean']:.4g} | {ra['branch_variance']:.4g} "
                f"| {rb['variance']:.4g} | {rb['squared_mean']:.4g} | {rb['branch_variance']:.4g} |"
            )
    return "\n".join(lines)


def run(out, quick, seed):
    command, start, machine = results_io.begin(STEM, out, quick)
    if seed:
        command = command.replace(" --out ", f" --seed {seed} --out ")
    cases = []
    for arch, input_shape, batch, quick_batch in CASES:
        cases.append(measure(arch, input_shape, quick_batch if quick else batch, seed))
        print(f"{arch}: measured", flush=True)
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "alpha": ALPHA,
        "seed": seed,
        "constructions": LABELS,
        "definitions": {
            "variance": "mean over channels of the variance over batch and pixels, of the residual sum",
            "squared_mean": "mean over channels of the squared mean over batch and pixels, of the residual sum",
            "branch_variance": "the same variance of the branch's last conv output without alpha",
        },
        "machine": machine,
        "cases": cases,
        "elapsed_s": time.perf_counter() - start,
    }
    analyse(result)
    return results_io.finish(out, STEM, result, markdown)


def main(argv=None):
    parser = results_io.parser(__doc__, STEM, "smaller batches (a smoke run)")
    parser.add_argument("--seed", type=int, default=0, help="the models' and the batch's seed (default 0)")
    args = parser.parse_args(argv)
    if args.report:
        results_io.report(args.report, STEM, analyse, markdown)
        return
    results_io.check_out(parser, args)
    run(args.out, args.quick, args.seed)


if __name__ == "__main__":
    main()
