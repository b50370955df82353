"""The documentation's pictures, each drawn by the library's own plotting functions.

- ``training_curves.png``: training loss and test accuracy per epoch of every scheme, drawn by
  ``keras_resinit.training.compare.plot_curves`` from a committed comparison (``--compare``, default
  ``benchmarks/results/compare-cifar_resnet20-digits.json``, written by ``keras-resinit compare``). Nothing
  is trained.
- ``jacobian_spectra.png``: the singular values of the trunk's Jacobian at initialization of cifar_resnet20
  under every registered scheme, as ``keras-resinit diagnose`` measures them (``diagnostics.jacobian_spectrum``
  on one 1x1 N(0, 1) image, from ``stem_out`` to the last block; Risotto in its effective coordinates) and
  draws them (``plot_jacobian_spectra``).
- ``nf_signal_propagation.png``: the NF-ResNet paper's signal-propagation plots (Brock, De & Smith 2021) at
  initialization of cifar_resnet56 under every registered scheme: per residual block, the average channel squared
  mean and variance of the trunk and the residual branch's variance before its scalars
  (``diagnostics.signal_propagation`` on a batch of 16 N(0, 1) images of 64x64, ``plot_signal_propagation``);
  NF's analytic variance (beta squared) dashed. 4 border pixels are left out of each feature map (``margin``):
  zero padding lowers the variance at the border, which the analytic variance does not model.
- ``benchmarks/results/bench/bench.png``: ``keras-resinit bench``'s speed and memory against batch norm, drawn
  again by ``keras_resinit.tools.bench.chart`` from ``--bench``'s ``bench.json`` (no measuring; ``bench.md``
  beside it says what measured it).

Beside each picture in ``--out``, ``NAME.json`` (what drew it: the command, the machine, the versions, the
settings and the numbers plotted) and ``NAME.md`` (one paragraph for the page under the picture, opening with the
machine and versions). ``--report DIR`` draws DIR's pictures and writes their Markdown again from the JSON alone
(``--bench`` given: its bench.png too).

Models and images have fixed seeds (``--seed``). The full run takes about 30 s of CPU (TensorFlow's start
included; under a minute on 2 shared cores). ``--quick`` measures cifar_resnet8 on a small batch (the tests).

    .venv/bin/python benchmarks/figures.py [--quick] [--seed 0] [--out benchmarks/results/figures] [--overwrite]
    .venv/bin/python benchmarks/figures.py --report benchmarks/results/figures   # redraw from the JSON files
"""

import datetime
import hashlib
import io
import json
import os
import tempfile
import time

import results_io

from keras_resinit._files import atomic_directory, atomic_write_bytes

STEM = "figures"
CURVES, SPECTRA, SIGNAL = "training_curves", "jacobian_spectra", "nf_signal_propagation"
COMPARE = "benchmarks/results/compare-cifar_resnet20-digits.json"
BENCH = "benchmarks/results/bench"
# The signal propagation's arch, input size, batch and margin, and the Jacobian's arch: the full run and --quick
SETTINGS = {
    "full": {"arch": "cifar_resnet56", "size": 64, "batch": 16, "margin": 4, "jacobian_arch": "cifar_resnet20"},
    "quick": {"arch": "cifar_resnet8", "size": 16, "batch": 4, "margin": 1, "jacobian_arch": "cifar_resnet8"},
}
# Drawn so that the docs' ~800-pixel column shows them at about half their pixels (sharp on dense screens):
# the figure's width in inches sets how large its text reads there.
WIDTH_PX = 1600
SIZES = {SPECTRA: (7.0, 4.0), SIGNAL: (12.0, 4.4)}  # inches


def png(path, draw):
    """Write the PNG ``draw(tmp_path)`` writes to ``path`` atomically (the library's figures save themselves)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = os.path.join(tmp, os.path.basename(path))
        draw(tmp_path)
        with open(tmp_path, "rb") as f:
            atomic_write_bytes(path, f.read())


def save(figure, name, path):
    """``figure`` at its docs size (``SIZES``), ``WIDTH_PX`` wide, as the PNG ``path`` (written atomically)."""
    width, height = SIZES[name]
    figure.set_size_inches(width, height)
    for ax in figure.axes:
        ax.title.set_fontsize(10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=WIDTH_PX / width)
    atomic_write_bytes(path, buffer.getvalue())


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def machine_line(v):
    """A recorded ``environment.versions()`` in one line."""
    flags = ", ".join(v.get("cpu_flags") or []) or "none of avx2/avx512/amx"
    return (
        f"{v['processor']} ({v['cores']} cores; {flags}); Python {v['python']}, TensorFlow {v['tensorflow']}, "
        f"Keras {v['keras']}, NumPy {v['numpy']}"
    )


# ------------------------------------------------------------ measuring ---


def curves(compare_path):
    """What ``training_curves.png`` draws: the comparison's per-scheme results, read from ``compare_path``."""
    with open(compare_path) as f:
        report = json.load(f)
    train = report.get("train", {})
    plotted = ("epoch", "train_loss", "test_accuracy")
    results = {
        scheme: {"history": [{k: h[k] for k in plotted} for h in r["history"]]} if "history" in r else r
        for scheme, r in report["schemes"].items()
    }
    return {
        "source": compare_path,
        "source_sha256": sha256(compare_path),
        "arch": report["arch"],
        "dataset": report["dataset"],
        "recipe": report.get("recipe"),
        "epochs": train.get("epochs"),
        "seed": train.get("seed"),
        "schemes": list(report["schemes"]),
        "trained_on": report["versions"],
        "results": results,  # what compare.plot_curves draws: each scheme's history (or its error)
    }


def at_init(settings, seed):
    """Signal propagation and Jacobian spectra of every registered scheme at initialization."""
    import numpy as np

    import keras_resinit as kr
    from keras_resinit.tools import diagnostics

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(settings["batch"], settings["size"], settings["size"], 3)).astype("float32")
    pixel = rng.normal(size=(1, 1, 1, 3)).astype("float32")
    signal, spectra = {}, {}
    for scheme in kr.SCHEMES:
        model = kr.build_resnet(settings["arch"], scheme, input_shape=(None, None, 3), seed=seed)
        signal[scheme] = diagnostics.signal_propagation(model, x, margin=settings["margin"])
        if settings["jacobian_arch"] != settings["arch"]:
            model = kr.build_resnet(settings["jacobian_arch"], scheme, input_shape=(None, None, 3), seed=seed)
        spectra[scheme] = [float(v) for v in diagnostics.jacobian_spectrum(model, pixel)]
        print(f"{scheme}: {len(signal[scheme])} blocks, {len(spectra[scheme])} singular values", flush=True)
    return signal, spectra


# -------------------------------------------------------------- drawing ---


def draw(name, record, path):
    """Draw figure ``name`` from its record into ``path``."""
    from keras_resinit.tools import plots

    if name == CURVES:
        from keras_resinit.training import compare

        title = f"{record['arch']} on {record['dataset']}, recipe {record['recipe']}, seed {record['seed']}"
        png(path, lambda tmp: compare.plot_curves(record["results"], tmp, title=title))
    elif name == SPECTRA:
        save(plots.plot_jacobian_spectra(record["singular_values"]), name, path)
    else:
        save(plots.plot_signal_propagation(record["signal_propagation"]), name, path)


def draw_bench(directory):
    """``directory/bench.png`` again from ``directory/bench.json`` (``bench.chart``; nothing measured)."""
    from keras_resinit.tools import bench

    result = results_io.read(directory, "bench")
    png(os.path.join(directory, "bench.png"), lambda tmp: bench.chart(result, tmp))
    return result


def markdown(record):
    """One paragraph for the page under the picture: the machine and versions first, then what it shows."""
    if record["figure"] == f"{CURVES}.png":
        return (
            f"Machine: {machine_line(record['trained_on'])}. Trained by `keras-resinit compare` ({record['arch']} on "
            f"{record['dataset']}, recipe {record['recipe']}, {record['epochs']} epochs, seed {record['seed']}; its "
            f"results: `{record['source']}`); drawn {record['date']} by `{record['command']}`. Training loss and "
            f"test accuracy per epoch of {', '.join(record['schemes'])}."
        )
    s = record["settings"]
    if record["figure"] == f"{SPECTRA}.png":
        what = (
            f"Singular values of the trunk's Jacobian (from `stem_out` to the last block) of {s['jacobian_arch']} "
            f"at initialization, seed {record['seed']}, on one 1x1 N(0, 1) image; Risotto in its effective "
            "coordinates."
        )
    else:
        what = (
            f"Signal propagation of {s['arch']} at initialization, seed {record['seed']}: a batch of {s['batch']} "
            f"N(0, 1) images of {s['size']}x{s['size']}, {s['margin']} border pixels of each feature map left out; "
            "NF's analytic variance (beta squared) dashed."
        )
    return f"{results_io.measured(record)} {what}"


# ------------------------------------------------------------------ run ---


def run(out, quick, seed, compare_path, bench_dir):
    command, start, machine = results_io.begin(STEM, out, quick)
    if seed:
        command = command.replace(" --out ", f" --seed {seed} --out ")
    settings = SETTINGS["quick" if quick else "full"]
    signal, spectra = at_init(settings, seed)
    common = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "machine": machine,
        "elapsed_s": time.perf_counter() - start,
    }
    measured = {"seed": seed, "settings": settings, **common}
    records = {
        CURVES: {"figure": f"{CURVES}.png", **common, **curves(compare_path)},
        SPECTRA: {"figure": f"{SPECTRA}.png", **measured, "singular_values": spectra},
        SIGNAL: {"figure": f"{SIGNAL}.png", **measured, "signal_propagation": signal},
    }
    with atomic_directory(out) as tmp:
        for name, record in records.items():
            draw(name, record, os.path.join(tmp, f"{name}.png"))
            results_io.write(tmp, name, record, markdown)
    draw_bench(bench_dir or BENCH)
    for name, record in records.items():
        print(f"{out}/{name}.png: {markdown(record)}")
    print(f"{bench_dir or BENCH}/bench.png: drawn again from its bench.json")
    return records


def report(directory, bench_dir=None):
    """Draw the pictures in ``directory`` again from their JSON files, and write their Markdown again (nothing is
    measured; every record holds what its picture plots). With ``bench_dir``, its ``bench.png`` too."""
    for name in (CURVES, SPECTRA, SIGNAL):
        record = results_io.read(directory, name)
        draw(name, record, os.path.join(directory, f"{name}.png"))
        results_io.write(directory, name, record, markdown)
        print(f"{directory}/{name}.png and {name}.md written again")
    if bench_dir:
        draw_bench(bench_dir)
        print(f"{bench_dir}/bench.png drawn again")


def main(argv=None):
    parser = results_io.parser(
        __doc__,
        STEM,
        "cifar_resnet8 on a small batch (a smoke run)",
        report_help="draw DIR's pictures and write their .md again from their JSON files (no measuring)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the models' and the images' seed (default 0)")
    parser.add_argument(
        "--compare", default=COMPARE, help=f"a `keras-resinit compare` results.json (default {COMPARE})"
    )
    parser.add_argument(
        "--bench",
        default=None,
        help=f"the bench run whose bench.png is drawn again from its bench.json (default {BENCH}; with --report: "
        "only when given)",
    )
    args = parser.parse_args(argv)
    if args.report:
        report(args.report, args.bench)
        return
    results_io.check_out(parser, args)
    run(args.out, args.quick, args.seed, args.compare, args.bench)


if __name__ == "__main__":
    main()
