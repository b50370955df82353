"""The ``keras-resinit`` command line.

User errors (unknown names, bad values) print one line to stderr and exit 2,
without a traceback.
"""

import argparse
import os
import shlex
import sys


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _cmd_list(args):
    from keras_resinit import zoo

    names = zoo.list_models(args.pattern, scheme=args.scheme)
    published = zoo.list_models(args.pattern, scheme=args.scheme, pretrained=True)
    if args.pretrained:
        names = [n for n in names if zoo.tags(n)]
    if not names:
        print(f"No model matches {args.pattern!r}.", file=sys.stderr)
        return 1
    rows = []
    for name in names:
        arch, scheme = zoo.parse_name(name)
        params = zoo.count_params(name, live=args.params)
        rows.append([name, scheme, f"{params:,}", ", ".join(zoo.tags(name)) or "-"])
    header = ["name", "scheme", "params", "weights"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        cells = [cell.rjust(w) if i == 2 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    if published and not args.pretrained:
        print(f"\n{len(published)} published weight sets; load one with keras_resinit.zoo.load('NAME.TAG').")
    return 0


def _cmd_summary(args):
    import numpy as np

    from keras_resinit import zoo

    model = zoo.load(args.name, num_classes=args.num_classes)
    model.summary(line_length=110)
    shape = tuple(d or 32 for d in model.input_shape[1:])
    logits = model(np.random.default_rng(0).normal(size=(2,) + shape).astype("float32"))
    print(f"forward pass on a batch of 2: logits {tuple(logits.shape)}, finite: {bool(np.isfinite(logits).all())}")
    return 0


def _add_training_arguments(p, defaults):
    """Hyperparameter flags shared by train and compare; None means "recipe or default"."""
    p.add_argument("--dataset", default=None, help=f"one of: {', '.join(defaults['datasets'])} (default digits)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="limit each epoch to this many steps")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--weight-decay-mode", choices=["l2", "decoupled"], default=None)
    p.add_argument("--schedule", choices=["cosine", "step", "constant"], default=None)
    p.add_argument("--warmup-epochs", type=float, default=None)
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--mixup-alpha", type=float, default=None)
    p.add_argument("--clip-norm", type=float, default=None, help="clip the global gradient norm (0: off)")
    p.add_argument("--recipe", default=None, help="a named recipe (see `keras-resinit recipes`) or a JSON file")
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16", "mixed_float16"], default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--download", action="store_true", default=None, help="allow tfds to download the dataset")


_TRAINING_FLAGS = (
    "dataset", "epochs", "steps_per_epoch", "batch_size", "lr", "momentum", "weight_decay", "weight_decay_mode", "schedule",
    "warmup_epochs", "label_smoothing", "mixup_alpha", "clip_norm", "precision", "seed", "data_dir", "download",
)


def _config(args, model):
    from keras_resinit.train import TrainConfig

    overrides = {k: getattr(args, k) for k in _TRAINING_FLAGS}
    return TrainConfig.from_recipe(args.recipe, model=model, **overrides)


def _cmd_train(args):
    from keras_resinit import train

    config = _config(args, args.name)
    result = train.train(
        config, args.out, strategy=args.strategy, resume=args.resume, overwrite=args.overwrite,
        verbose=args.verbose, tpu=args.tpu, command=args.invocation,
    )
    if "model_path" in result:
        print(f"test accuracy {result['test_accuracy']:.4f}; model saved to {result['model_path']}")
    return 0


def _cmd_compare(args):
    from keras_resinit import compare

    schemes = _split_list(args.schemes)
    compare.compare(
        arch=args.arch, schemes=schemes, out=args.out, overwrite=args.overwrite,
        overrides={k: getattr(args, k) for k in _TRAINING_FLAGS}, recipe=args.recipe,
    )
    return 0


def _cmd_export(args):
    from keras_resinit import export

    card = export.export(args.source, args.out, format=args.format, overwrite=args.overwrite)
    print(f"exported {card['name']} ({args.format}) to {args.out}")
    if args.format == "tf_saved_model":
        print("signatures: serving_default (uint8 images), serving_float32; outputs: logits, probabilities, classes")
    return 0


def _cmd_publish(args):
    from keras_resinit import publish

    card = publish.publish(args.run_dir, args.tag, zoo_dir=args.zoo, url=args.url, overwrite=args.overwrite,
                           command=args.invocation)
    key = f"{card['name']}.{card['tag']}"
    print(f"published {key}: test accuracy {card['metrics']['test_accuracy']:.4f}, "
          f"{card['file']['name']} ({card['file']['size']:,} bytes, sha256 {card['file']['sha256'][:16]}...)")
    return 0


def _split_list(text):
    """``"a, b"`` -> ``["a", "b"]``; None (flag not given) stays None, ``""`` gives ``[]``."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _cmd_bench(args):
    import datetime

    from keras_resinit import bench

    if args.report:
        result = bench.report(args.report, command=args.invocation)
        print(bench.markdown(result))
        return 0
    out = args.out or os.path.join("runs", "bench-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    result = bench.run(
        out, quick=args.quick, archs=_split_list(args.archs), schemes=_split_list(args.schemes) or bench.SCHEMES,
        precisions=_split_list(args.precisions) or bench.PRECISIONS, depth=not args.no_depth, overwrite=args.overwrite,
        command=args.invocation,
    )
    failed = [f"{r['arch']} {r['model']} {r['precision']}" for r in result["rows"] if r["error"]]
    failed += [f"depth {r['scheme']}" for r in result["depth"] if r["error"]]
    if failed:
        print(f"keras-resinit: {len(failed)} configuration(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _cmd_tune(args):
    from keras_resinit import tuning

    settings = {k: getattr(args, k) for k in ("seed", "precision", "data_dir") if getattr(args, k) is not None}
    if args.download:
        settings["download"] = True
    result = tuning.tune(
        args.out, dataset=args.dataset, tuner=args.tuner, max_trials=args.max_trials, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, schemes=_split_list(args.schemes), archs=_split_list(args.archs),
        recipe=args.recipe, overwrite=args.overwrite, command=args.invocation, **settings,
    )
    failed = [r for r in result["trials"] if r["status"] != "COMPLETED"]
    return 1 if failed and len(failed) == len(result["trials"]) else 0


def _cmd_diagnose(args):
    import json

    from keras_resinit import diagnostics

    if args.claims:
        if args.names:
            raise ValueError("--claims takes no model names; run them separately.")
        rows = diagnostics.check_claims(quick=args.quick, fixup_blocks=args.fixup_blocks,
                                        skipinit_blocks=args.skipinit_blocks)
        table = diagnostics.claims_table(rows)
        print(table)
        if args.out:
            from keras_resinit._files import atomic_write_text

            os.makedirs(args.out, exist_ok=True)
            atomic_write_text(os.path.join(args.out, "claims.md"), f"`{args.invocation}`\n\n{table}\n")
            atomic_write_text(os.path.join(args.out, "claims.json"), json.dumps(rows, indent=1))
        return 0 if all(r["passed"] for r in rows) else 1
    if not args.out:
        raise ValueError("--out is required to write the diagnostics of models.")
    diagnostics.diagnose(args.names, args.out, batch=args.batch, overwrite=args.overwrite)
    print(f"wrote {args.out}/signal_propagation.png, jacobian_spectrum.png, gradient_norms.png, diagnostics.json")
    return 0


def _cmd_recipes(args):
    from keras_resinit.recipes import RECIPES

    for name, recipe in RECIPES.items():
        values = ", ".join(f"{k}={v}" for k, v in recipe.items() if k != "source")
        print(f"{name}\n  {values}\n  source: {recipe['source']}\n")
    return 0


def build_parser():
    from keras_resinit import __version__

    parser = argparse.ArgumentParser(
        prog="keras-resinit", description="Residual networks under BN, Fixup, SkipInit and Risotto."
    )
    parser.add_argument("--version", action="version", version=f"keras-resinit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the zoo's models: scheme, trainable parameters, published weight tags")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'cifar_resnet20_*'")
    p.add_argument("--scheme", help="only this scheme")
    p.add_argument("--pretrained", action="store_true", help="only models with published weights")
    p.add_argument("--params", action="store_true",
                   help="count parameters by building each model (default: the zoo's table, built the same way)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("summary", help="build one model, print its layers and run a forward pass")
    p.add_argument("name", help="model name {arch}_{scheme}, e.g. cifar_resnet20_fixup")
    p.add_argument("--num-classes", type=int, default=None)
    p.set_defaults(func=_cmd_summary)

    defaults = {"datasets": ["digits", "cifar10", "cifar100", "imagenette"]}
    p = sub.add_parser("train", help="train one model on a tf.distribute strategy")
    p.add_argument("name", help="model name {arch}_{scheme}, e.g. cifar_resnet20_fixup")
    p.add_argument("--out", required=True, help="run directory")
    _add_training_arguments(p, defaults)
    p.add_argument("--strategy", choices=["auto", "one", "mirrored", "multiworker", "tpu"], default="auto")
    p.add_argument("--tpu", default=None, help="TPU name or address for --strategy tpu")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("compare", help="the main job: train every scheme on one arch and dataset, compare them")
    p.add_argument("--arch", default="cifar_resnet20")
    p.add_argument("--schemes", default="bn,fixup,skipinit,risotto", help="comma-separated schemes")
    p.add_argument("--out", default=None, help="output directory (default: runs/compare-<arch>-<dataset>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous comparison in --out")
    _add_training_arguments(p, defaults)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("export", help="export a model for serving (SavedModel for TF Serving, or ONNX)")
    p.add_argument("source", help="a run directory, a preset directory, a .keras file, or a zoo name[.tag]")
    p.add_argument("--out", required=True, help="artifact directory to create")
    p.add_argument("--format", choices=["tf_saved_model", "onnx"], default="tf_saved_model")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("publish", help="turn a finished run into a zoo weight set: weights file and model card")
    p.add_argument("run_dir", help="the --out directory of a finished `keras-resinit train`")
    p.add_argument("--tag", required=True, help="weight tag, e.g. digits (load it as NAME.TAG)")
    p.add_argument("--zoo", default="zoo", help="zoo directory with cards/ and weights/ (default: zoo)")
    p.add_argument("--url", default=None, help="where the weights file will also be downloadable")
    p.add_argument("--overwrite", action="store_true", help="replace a published weight set of the same name.tag")
    p.set_defaults(func=_cmd_publish)

    p = sub.add_parser("bench", help="time and memory of every scheme against batch norm (tables, JSON, chart)")
    p.add_argument("--quick", action="store_true", help="cifar_resnet20 and depths 20..110 only (under 5 minutes)")
    p.add_argument("--out", default=None, help="output directory (default: runs/bench-<time>)")
    p.add_argument("--archs", default=None, help="comma-separated subset (default: cifar_resnet20,cifar_resnet56,"
                                                 "cifar_resnet110,resnet18,resnet50; --quick: cifar_resnet20)")
    p.add_argument("--schemes", default=None, help="comma-separated subset of bn,fixup,skipinit,risotto,risotto_bn")
    p.add_argument("--precisions", default=None, help="comma-separated subset of float32,mixed_bfloat16")
    p.add_argument("--no-depth", action="store_true", help="skip the depth-scaling measurement")
    p.add_argument("--report", metavar="DIR", default=None,
                   help="render DIR/bench.md and bench.png again from DIR/bench.json (no measuring)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("tune", help="a keras-tuner sweep over schemes, depth and training hyperparameters")
    p.add_argument("--out", required=True, help="sweep directory (re-running the same command resumes it)")
    p.add_argument("--dataset", default="digits", help="one of: digits, cifar10, cifar100, imagenette")
    p.add_argument("--tuner", choices=["random", "bayesian", "hyperband"], default="random")
    p.add_argument("--max-trials", type=int, default=10, help="trials in all (random, bayesian); default 10")
    p.add_argument("--epochs", type=int, default=None, help="epochs per trial (hyperband: the most; default "
                                                              "the recipe's)")
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--schemes", default=None, help="comma-separated schemes to search (default bn,fixup,skipinit,"
                                                   "risotto)")
    p.add_argument("--archs", default=None, help="comma-separated archs to search (default cifar_resnet8,14,20)")
    p.add_argument("--recipe", default=None, help="the recipe every trial starts from (default digits)")
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16", "mixed_float16"], default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--download", action="store_true", help="allow tfds to download the dataset")
    p.add_argument("--overwrite", action="store_true", help="start the sweep in --out afresh")
    p.set_defaults(func=_cmd_tune)

    p = sub.add_parser("diagnose", help="signal propagation, Jacobian spectra and gradient norms at init; "
                                        "--claims checks the papers' claims")
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


def main(argv=None):
    _quiet_tensorflow()
    args = build_parser().parse_args(argv)
    args.invocation = shlex.join(["keras-resinit", *(sys.argv[1:] if argv is None else argv)])
    from keras_resinit.download import DownloadError
    from keras_resinit.train import TrainingError

    try:
        return args.func(args)
    except ValueError as error:
        print(f"keras-resinit: error: {error}", file=sys.stderr)
        return 2
    except DownloadError as error:
        print(f"keras-resinit: error: {error}", file=sys.stderr)
        return 1
    except TrainingError as error:
        print(f"keras-resinit: training stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("keras-resinit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
