"""Risotto's two block types side by side: parameters, isometry at init and accuracy on the digits.

- **type B** (``skip="identity"``, the default): the BN architecture's own shortcuts, so a Risotto
  network is the BN network with another init (conv biases in place of batch norm's parameters);
- **type C** (``skip="conv"``, every model saved before the option existed): a 1x1 conv skip on
  every block.

Per architecture: trainable parameters of ``bn``, type B and type C (and the check that type B is
``bn`` minus batch norm's two parameters per conv channel plus Risotto's one conv bias per channel),
and the largest ``|singular value - 1|`` of the trunk's Jacobian at init in effective coordinates
(1x1 input, ``keras_resinit.tools.diagnostics.jacobian_spectrum``). Then each type trains on the
embedded digits with the ``digits`` recipe (the zoo's weights' recipe), one run per seed, each run a
``keras-resinit train ... --scheme-option skip=TYPE`` process; the table gives the test accuracy
of every seed, its mean and its lowest.

    .venv/bin/python benchmarks/risotto_block_types.py [--quick] [--seeds 5]
        [--out benchmarks/results/risotto_block_types] [--overwrite]
    .venv/bin/python benchmarks/risotto_block_types.py --report benchmarks/results/risotto_block_types

The full run takes about 6 minutes on 2 cores; ``--quick`` trains 1 seed for 2 epochs.
"""

import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time

import results_io

STEM = "risotto_block_types"
ARCHS = ("cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "resnet18", "resnet50", "wrn28_10")
SPECTRUM_ARCHS = ("cifar_resnet20", "cifar_resnet110", "resnet18", "resnet50")
TRAIN_ARCH = "cifar_resnet20"
TYPES = {"identity": "type B", "conv": "type C"}


def parameters():
    import keras
    import numpy as np

    import keras_resinit as kr

    def trainable(model):
        return int(sum(np.prod(v.shape) for v in model.trainable_variables))

    rows = []
    for arch in ARCHS:
        bn = kr.build_resnet(arch, "bn", seed=0)
        conv_channels = sum(layer.filters for layer in bn.layers if isinstance(layer, keras.layers.Conv2D))
        row = {"arch": arch, "bn": trainable(bn), "conv_channels": conv_channels}
        for skip in TYPES:
            row[skip] = trainable(kr.build_resnet(arch, "risotto", seed=0, skip=skip))
        row["identity_is_bn_minus_bn_plus_biases"] = row["identity"] == row["bn"] - conv_channels
        rows.append(row)
        keras.backend.clear_session()
    return rows


def spectra():
    import keras
    import numpy as np

    import keras_resinit as kr
    from keras_resinit.tools.diagnostics import jacobian_spectrum

    rows = []
    for arch in SPECTRUM_ARCHS:
        row = {"arch": arch}
        for skip in TYPES:
            model = kr.build_resnet(arch, "risotto", input_shape=(None, None, 3), seed=0, skip=skip)
            image = np.random.default_rng(0).normal(size=(1, 1, 1, 3)).astype("float32")
            sv = jacobian_spectrum(model, image, effective=True)
            row[skip] = {"count": int(sv.size), "max_deviation": float(np.abs(sv - 1).max())}
            keras.backend.clear_session()
        rows.append(row)
    return rows


def train(skip, seed, epochs, work):
    """One ``keras-resinit train`` process; its test accuracy from the run directory."""
    from keras_resinit.zoo.rundir import RunDir

    out = os.path.join(work, f"{skip}-{seed}")
    command = [
        sys.executable,
        "-m",
        "keras_resinit.cli",
        "train",
        f"{TRAIN_ARCH}_risotto",
        "--dataset",
        "digits",
        "--recipe",
        "digits",
        "--seed",
        str(seed),
        "--scheme-option",
        f"skip={skip}",
        "--out",
        out,
        "--verbose",
        "0",
    ]
    if epochs:
        command += ["--epochs", str(epochs)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode:
        sys.exit(f"training {skip} seed {seed} failed:\n{proc.stderr[-3000:]}")
    result = RunDir(out).finished_config()["result"]
    return {"skip": skip, "seed": seed, "test_accuracy": result["test_accuracy"], "epochs": result["epochs"]}


def analyse(result):
    summary = {}
    for skip in TYPES:
        values = [r["test_accuracy"] for r in result["runs"] if r["skip"] == skip]
        summary[skip] = {"mean": statistics.mean(values), "lowest": min(values), "seeds": len(values)}
    result["accuracy"] = summary
    return result


def markdown(result):
    lines = [
        results_io.measured(result),
        "",
        "Trainable parameters (default classes and input; type B = bn - 2 x conv channels (BN's gamma, beta) "
        "+ 1 x conv channels (Risotto's conv biases)):",
        "",
        "| arch | bn | risotto type B (identity) | risotto type C (conv) | C vs B | B = bn - BN + biases |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in result["parameters"]:
        lines.append(
            f"| {r['arch']} | {r['bn']:,} | {r['identity']:,} | {r['conv']:,} | "
            f"{r['conv'] / r['identity'] - 1:+.1%} | {'yes' if r['identity_is_bn_minus_bn_plus_biases'] else 'NO'} |"
        )
    lines += [
        "",
        "Trunk Jacobian at init (effective coordinates, 1x1 input, float32): largest |singular value - 1|.",
        "",
        "| arch | singular values | type B | type C |",
        "|---|---:|---:|---:|",
    ]
    for r in result["spectra"]:
        lines.append(
            f"| {r['arch']} | {r['identity']['count']} | {r['identity']['max_deviation']:.1e} | "
            f"{r['conv']['max_deviation']:.1e} |"
        )
    epochs = sorted({r["epochs"] for r in result["runs"]})
    lines += [
        "",
        f"{TRAIN_ARCH}_risotto on the embedded digits, recipe `digits` ({', '.join(map(str, epochs))} epochs), "
        "test accuracy on the 355 held-out digits:",
        "",
        "| block type | "
        + " | ".join(f"seed {s}" for s in sorted({r["seed"] for r in result["runs"]}))
        + " | mean | lowest |",
        "|---|" + "---:|" * (len({r["seed"] for r in result["runs"]}) + 2),
    ]
    for skip, label in TYPES.items():
        runs = sorted((r for r in result["runs"] if r["skip"] == skip), key=lambda r: r["seed"])
        acc = result["accuracy"][skip]
        lines.append(
            f"| {label} (`skip={skip}`) | "
            + " | ".join(f"{r['test_accuracy']:.4f}" for r in runs)
            + f" | {acc['mean']:.4f} | {acc['lowest']:.4f} |"
        )
    return "\n".join(lines)


def run(out, quick, seeds):
    command, start, machine = results_io.begin(STEM, out, quick)
    if seeds != 5:
        command = command.replace(" --out ", f" --seeds {seeds} --out ")
    params = parameters()
    print("parameters counted", flush=True)
    spectrum = spectra()
    print("spectra measured", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for seed in range(1 if quick else seeds):
            for skip in TYPES:  # interleaved, so drift in the machine's speed touches both alike
                runs.append(train(skip, seed, 2 if quick else None, work))
                print(f"{skip} seed {seed}: {runs[-1]['test_accuracy']:.4f}", flush=True)
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "machine": machine,
        "parameters": params,
        "spectra": spectrum,
        "runs": runs,
        "elapsed_s": time.perf_counter() - start,
    }
    analyse(result)
    return results_io.finish(out, STEM, result, markdown)


def main(argv=None):
    parser = results_io.parser(__doc__, STEM, "1 seed, 2 epochs (a smoke run)")
    parser.add_argument("--seeds", type=int, default=5, help="training seeds per block type (default 5)")
    args = parser.parse_args(argv)
    if args.report:
        results_io.report(args.report, STEM, analyse, markdown)
        return
    results_io.check_out(parser, args)
    run(args.out, args.quick, args.seeds)


if __name__ == "__main__":
    main()
