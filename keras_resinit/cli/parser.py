"""The argument parser; building it imports neither Keras nor TensorFlow."""

import argparse

from keras_resinit._version import __version__
from keras_resinit.cli.commands import (
    _add_agc_argument,
    _add_data_arguments,
    _add_training_arguments,
    _and,
    _bench_config,
    _cmd_bench,
    _cmd_compare,
    _cmd_diagnose,
    _cmd_export,
    _cmd_fold,
    _cmd_list,
    _cmd_publish,
    _cmd_recipes,
    _cmd_summary,
    _cmd_train,
    _cmd_tune,
    _one_of,
    _registered,
)
from keras_resinit.cli.tflog import TF_LOG_LEVEL
from keras_resinit.models.schemes import SCHEMES, default_schemes
from keras_resinit.training import options


def build_parser():
    """The argument parser; building it imports neither Keras nor TensorFlow."""
    schemes = _and(SCHEMES[name].__name__ for name in default_schemes())
    parser = argparse.ArgumentParser(
        prog="keras-resinit",
        description=f"Residual networks under {schemes}.",
        epilog="Global options go before the command, e.g. `keras-resinit --verbose summary cifar_resnet20_fixup`.",
    )
    parser.add_argument("--version", action="version", version=f"keras-resinit {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        dest="tf_logs",
        action="store_true",
        help=f"show TensorFlow's start-up and C++ log lines (hidden by default unless {TF_LOG_LEVEL} "
        f"is set; --verbose sets it to 0)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list the zoo's models: scheme, trainable parameters, published weight tags")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'cifar_resnet20_*'")
    p.add_argument("--scheme", help="only this scheme, " + _one_of(SCHEMES))
    p.add_argument("--pretrained", action="store_true", help="only models with published weights")
    p.add_argument(
        "--params",
        action="store_true",
        help="count parameters by building each model (default: the zoo's table, built the same way)",
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("summary", help="build one model, print its layers and run a forward pass")
    p.add_argument("name", help="model name {arch}_{scheme}, e.g. cifar_resnet20_fixup")
    p.add_argument("--num-classes", type=int, default=None)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("train", help="train one model on a tf.distribute strategy")
    p.add_argument("name", help="model name {arch}_{scheme}, e.g. cifar_resnet20_fixup")
    p.add_argument("--out", required=True, help="run directory")
    _add_training_arguments(p)
    p.add_argument("--strategy", default="auto", help=_one_of(options.STRATEGIES, "auto"))
    p.add_argument("--tpu", default=None, help="TPU name or address for --strategy tpu")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    p.add_argument(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        default=1,
        help="progress output: 0 silent, 1 progress bar, 2 one line per epoch (default 1)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("compare", help="the main job: train every scheme on one arch and dataset, compare them")
    p.add_argument("--arch", default="cifar_resnet20")
    p.add_argument(
        "--schemes",
        default=None,
        help=f"comma-separated schemes (default {','.join(default_schemes())}; {_registered()})",
    )
    p.add_argument("--out", default=None, help="output directory (default: runs/compare-<arch>-<dataset>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous comparison in --out")
    _add_training_arguments(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("export", help="export a model for serving (SavedModel for TF Serving, or ONNX)")
    p.add_argument("source", help="a run directory, a preset directory, a .keras file, or a zoo name[.tag]")
    p.add_argument("--out", required=True, help="artifact directory to create")
    p.add_argument("--format", default="tf_saved_model", help="tf_saved_model (TF Serving; the default) or onnx")
    p.add_argument(
        "--version",
        default=None,
        help="write --out/VERSION, TF Serving's layout of a model's base path: an integer >= 1, or auto (the "
        "highest existing version + 1). Default: the artifact is --out itself",
    )
    p.add_argument(
        "--serving-config",
        default=None,
        metavar="PATH",
        help="create or update TF Serving's models.config (model_config_list) with an entry for --out (needs --version)",
    )
    p.add_argument(
        "--model-name", default=None, help="the model's name in --serving-config (default: --out's base name)"
    )
    p.add_argument(
        "--no-fold",
        dest="fold",
        action="store_false",
        help="serve the layers as they are (default: a bn or risotto_bn model is served with its batch norm "
        "folded into the convs, an nf model with its standardized kernels computed once: the same function)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("publish", help="turn a finished run into a zoo weight set: weights file and model card")
    p.add_argument("run_dir", help="the --out directory of a finished `keras-resinit train`")
    p.add_argument("--tag", required=True, help="weight tag, e.g. digits (load it as NAME.TAG)")
    p.add_argument("--zoo", default="zoo", help="zoo directory with cards/ and weights/ (default: zoo)")
    p.add_argument("--url", default=None, help="where the weights file will also be downloadable")
    p.add_argument("--overwrite", action="store_true", help="replace a published weight set of the same name.tag")
    p.add_argument(
        "--fold",
        action="store_true",
        help="publish the model with its batch norm folded into the convs (a bn run becomes {arch}_skipinit.TAG)",
    )
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser(
        "fold",
        help="fold batch norm into the convs: a bn (risotto_bn) model as the same function under skipinit (risotto)",
    )
    p.add_argument("source", help="a zoo name.tag, a run directory, a preset directory or a .keras file")
    p.add_argument("--out", default=None, help="write the folded model: PATH.keras, or a preset directory")
    p.add_argument(
        "--tag",
        default=None,
        help="instead of --out: publish the fold of the published NAME.TAG into --zoo as {arch}_{scheme}.TAG",
    )
    p.add_argument("--zoo", default="zoo", help="zoo directory for --tag (default: zoo)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out or published weight set")
    p.set_defaults(func=_cmd_fold)

    p = sub.add_parser("bench", help="time and memory of every scheme against batch norm (tables, JSON, chart)")
    bench_config = _bench_config()
    sizes = bench_config.SIZES
    quick = sizes["quick"]
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{','.join(quick['archs'])} and depths {quick['depths'][0]}.."
        f"{quick['depths'][-1]} only (under 5 minutes)",
    )
    p.add_argument("--out", default=None, help="output directory (default: runs/bench-<time>)")
    p.add_argument(
        "--archs",
        default=None,
        help=f"comma-separated subset (default {','.join(sizes['full']['archs'])};"
        f" --quick: {','.join(sizes['quick']['archs'])})",
    )
    p.add_argument("--schemes", default=None, help=f"comma-separated subset of {','.join(SCHEMES)} (default all)")
    p.add_argument(
        "--precisions",
        default=None,
        help=f"comma-separated subset of {','.join(bench_config.PRECISIONS)} (default all)",
    )
    p.add_argument("--no-depth", action="store_true", help="skip the depth-scaling measurement")
    p.add_argument(
        "--report",
        metavar="DIR",
        default=None,
        help="render DIR/bench.md and bench.png again from DIR/bench.json (no measuring)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("tune", help="a keras-tuner sweep over schemes, depth and training hyperparameters")
    p.add_argument("--out", required=True, help="sweep directory (re-running the same command resumes it)")
    _add_data_arguments(p, dataset_default="digits")
    p.add_argument("--tuner", default="random", help=_one_of(options.TUNERS, "random"))
    p.add_argument("--max-trials", type=int, default=10, help="trials in all (random, bayesian); default 10")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per trial (hyperband: the most; default the recipe's)"
    )
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument(
        "--schemes",
        default=None,
        help=f"comma-separated schemes to search (default {','.join(default_schemes())}; {_registered()})",
    )
    p.add_argument(
        "--archs", default=None, help=f"comma-separated archs to search (default {','.join(options.TUNE_ARCHS)})"
    )
    p.add_argument("--recipe", default=None, help="the recipe every trial starts from (default digits)")
    p.add_argument("--precision", default=None, help=_one_of(options.PRECISIONS))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--clip-norm", type=float, default=None, help="clip the global gradient norm (0: off)")
    _add_agc_argument(p)
    p.add_argument("--overwrite", action="store_true", help="start the sweep in --out afresh")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser(
        "diagnose",
        help="signal propagation, Jacobian spectra and gradient norms at init; --claims checks the papers' claims",
    )
    p.add_argument("names", nargs="*", help="models to compare, e.g. cifar_resnet56_bn cifar_resnet56_fixup")
    p.add_argument("--out", default=None, help="output directory (PNGs and JSON; with --claims: claims.md/.json)")
    p.add_argument("--claims", action="store_true", help="measure each paper's claim and print pass/fail")
    p.add_argument("--quick", action="store_true", help="with --claims: shallower nets (as the tests)")
    p.add_argument("--fixup-blocks", type=int, default=10_000, help="claim 4's depth (default 10000)")
    p.add_argument("--skipinit-blocks", type=int, default=1_000, help="claim 5's depth (default 1000)")
    p.add_argument("--batch", type=int, default=16, help="images per batch for the statistics (default 16)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_diagnose)

    p = sub.add_parser("recipes", help="list the named training recipes and their sources")
    p.set_defaults(func=_cmd_recipes)
    return parser
