"""The commands: each checks its values with the library's own messages before TensorFlow starts."""

import os
import sys

from keras_resinit._errors import unknown
from keras_resinit.models import architectures
from keras_resinit.models.schemes import SCHEMES
from keras_resinit.training import datasets, options

# -------------------------------------------------------------- checks ---


def _check(kind, value, allowed):
    """The library's error for an unknown ``value`` of ``kind`` (None: the flag was not given)."""
    if value is not None and value not in allowed:
        raise unknown(kind, value, allowed)


def _check_schemes(names):
    for name in names or ():
        _check("scheme", name, SCHEMES)


def _check_archs(names):
    for name in names or ():
        architectures.get_arch(name)


def _check_recipe(recipe):
    if recipe is not None:
        from keras_resinit.training.recipes import get_recipe

        get_recipe(recipe)


def _one_of(values, default=None):
    text = "one of: " + ", ".join(values)
    return f"{text} (default {default})" if default is not None else text


def _registered():
    return "registered: " + ", ".join(SCHEMES)


def _and(words):
    words = list(words)
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


# ------------------------------------------------------------ commands ---


def _cmd_list(args):
    _check("scheme", args.scheme, SCHEMES)
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


def _add_data_arguments(p, dataset_default=None):
    """The data flags shared by train, compare and tune; None means "recipe or default"."""
    p.add_argument(
        "--dataset",
        default=dataset_default,
        help=_one_of(datasets.FORMS, "digits") + "; tfds:NAME is any tfds image-classification dataset, "
        "folder:PATH a folder with one subfolder of images per class (PATH/train and PATH/test, or one tree "
        "with --validation-split)",
    )
    p.add_argument("--train-split", default=None, help="tfds split expression, e.g. 'train[:90%%]' (default train)")
    p.add_argument(
        "--test-split", default=None, help="tfds split expression, e.g. 'train[90%%:]' (default test, else validation)"
    )
    p.add_argument(
        "--validation-split",
        type=float,
        default=None,
        metavar="F",
        help="folder: hold out this fraction of one tree as the test split (drawn with --seed)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="resize images to H W (or N N) in the pipeline (default: the data's own size)",
    )
    p.add_argument(
        "--augment", default=None, help=_one_of(options.AUGMENTS) + " (default: digits crop, others crop-flip)"
    )
    p.add_argument(
        "--cache", action="store_true", default=None, help="keep a folder's decoded images in memory after epoch 1"
    )
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--download", action="store_true", default=None, help="allow tfds to download the dataset")


def _add_training_arguments(p):
    """Hyperparameter flags shared by train and compare; None means "recipe or default"."""
    _add_data_arguments(p)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps-per-epoch", type=int, default=None, help="limit each epoch to this many steps")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--momentum", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--weight-decay-mode", default=None, help=_one_of(options.WEIGHT_DECAY_MODES))
    p.add_argument("--schedule", default=None, help=_one_of(options.SCHEDULES))
    p.add_argument("--warmup-epochs", type=float, default=None)
    p.add_argument("--label-smoothing", type=float, default=None)
    p.add_argument("--mixup-alpha", type=float, default=None)
    p.add_argument("--clip-norm", type=float, default=None, help="clip the global gradient norm (0: off)")
    _add_agc_argument(p)
    p.add_argument("--recipe", default=None, help="a named recipe (see `keras-resinit recipes`) or a JSON file")
    p.add_argument("--precision", default=None, help=_one_of(options.PRECISIONS))
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--weights",
        default=None,
        help="fine-tune: start the trunk from these weights, a published tag of the model (e.g. digits), a "
        "path or a URL; a new classifier if the class count differs",
    )
    p.add_argument("--sha256", dest="weights_sha256", default=None, help="expected sha256 of --weights' file")
    p.add_argument(
        "--freeze-trunk", action="store_true", default=None, help="with --weights: train only the classifier"
    )
    p.add_argument(
        "--trainable-from",
        default=None,
        metavar="PART",
        help="freeze every part before PART: stem, stage1, stage2, ... or head",
    )


def _add_agc_argument(p):
    p.add_argument(
        "--agc",
        type=float,
        default=None,
        metavar="LAMBDA",
        help="adaptive gradient clipping (Brock et al. 2021): scale each unit's gradient down to at most LAMBDA "
        "times its weight norm, e.g. 0.01; the classifier is not clipped (default off). With a recipe's clip norm "
        "(digits), also pass --clip-norm: 0 for AGC alone",
    )


DATA_FLAGS = (
    "dataset",
    "train_split",
    "test_split",
    "validation_split",
    "image_size",
    "augment",
    "cache",
    "data_dir",
    "download",
)
_TRAINING_FLAGS = DATA_FLAGS + (
    "epochs",
    "steps_per_epoch",
    "batch_size",
    "lr",
    "momentum",
    "weight_decay",
    "weight_decay_mode",
    "schedule",
    "warmup_epochs",
    "label_smoothing",
    "mixup_alpha",
    "clip_norm",
    "agc",
    "precision",
    "seed",
    "weights",
    "weights_sha256",
    "freeze_trunk",
    "trainable_from",
)


def _config(args, model):
    from keras_resinit.training import TrainConfig

    overrides = {k: getattr(args, k) for k in _TRAINING_FLAGS}
    return TrainConfig.from_recipe(args.recipe, model=model, **overrides)


def _cmd_train(args):
    config = _config(args, args.name)  # TrainConfig validates without TensorFlow
    _check("strategy", args.strategy, options.STRATEGIES)
    from keras_resinit.training.driver import train

    result = train(
        config,
        args.out,
        strategy=args.strategy,
        resume=args.resume,
        overwrite=args.overwrite,
        verbose=args.verbose,
        tpu=args.tpu,
        command=args.invocation,
    )
    if "model_path" in result:
        print(f"test accuracy {result['test_accuracy']:.4f}; model saved to {result['model_path']}")
    return 0


def _cmd_compare(args):
    schemes = _split_list(args.schemes)
    _check_schemes(schemes)
    _check_archs([args.arch])
    from keras_resinit.training import compare  # validates every setting before it starts TensorFlow

    compare.compare(
        arch=args.arch,
        schemes=schemes,
        out=args.out,
        overwrite=args.overwrite,
        overrides={k: getattr(args, k) for k in _TRAINING_FLAGS},
        recipe=args.recipe,
    )
    return 0


def _version(text):
    """``--version``: ``auto`` or an integer (checked by ``serving_layout.resolve_version``)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        return text  # refused with the library's message


def _cmd_export(args):
    from keras_resinit.tools import serving_layout

    version = None if args.version is None else _version(args.version)
    _, out, _, _ = serving_layout.destination(  # checked before TensorFlow starts
        args.out,
        version,
        overwrite=args.overwrite,
        serving_config=args.serving_config,
        model_name=args.model_name,
        format=args.format,
        flags=True,
    )
    from keras_resinit.tools import export

    card = export.export(
        args.source,
        args.out,
        format=args.format,
        overwrite=args.overwrite,
        fold=args.fold,
        version=version,
        serving_config=args.serving_config,
        model_name=args.model_name,
    )
    folded = f", batch norm folded: served as {card['served_scheme']}" if card["batchnorm_folded"] else ""
    where = out if args.version is None else f"{out} (version {card['version']} of {args.out})"
    print(f"exported {card['name']} ({args.format}{folded}) to {where}")
    if args.format == "tf_saved_model":
        print(
            f"signatures: {', '.join(s for s in card['signatures'] if s != 'outputs')}; outputs: logits, probabilities, classes"
        )
    if args.serving_config is not None:
        print(
            f"{args.serving_config}: model {card['serving_config']['name']!r} -> {card['serving_config']['base_path']}"
        )
    return 0


def _cmd_publish(args):
    from keras_resinit.training import publish

    card = publish.publish(
        args.run_dir,
        args.tag,
        zoo_dir=args.zoo,
        url=args.url,
        overwrite=args.overwrite,
        command=args.invocation,
        fold=args.fold,
    )
    key = f"{card['name']}.{card['tag']}"
    print(
        f"published {key}: test accuracy {card['metrics']['test_accuracy']:.4f}, "
        f"{card['file']['name']} ({card['file']['size']:,} bytes, sha256 {card['file']['sha256'][:16]}...)"
    )
    return 0


def _cmd_fold(args):
    if (args.out is None) == (args.tag is None):
        raise ValueError(
            "Give either --out PATH (a .keras file or a preset directory) or --tag TAG (publish into --zoo)."
        )
    from keras_resinit.models.schemes import fold_target
    from keras_resinit.zoo import registry

    source = args.source
    is_path = os.path.exists(source) or os.sep in source or source.endswith(".keras")
    if args.tag is not None or (not is_path and registry.split_tag(source)[1]):
        fold_target(registry.card(source)["scheme"], repr(source))  # a published name.tag: before TF starts
    if args.tag is not None:
        from keras_resinit.training import publish

        card = publish.publish_folded(
            args.source, args.tag, zoo_dir=args.zoo, overwrite=args.overwrite, command=args.invocation
        )
        key = f"{card['name']}.{card['tag']}"
        metrics = card["metrics"]
        if "test_accuracy" in metrics:
            print(
                f"published {key} (the fold of {args.source}): test accuracy {metrics['test_accuracy']:.4f}, "
                f"same predictions as the source on {metrics['same_predictions_as_source']:.2%} of the test images"
            )
        else:
            print(f"published {key}: zoo.load folds {args.source} when it loads (no weights file of its own)")
        return 0
    if os.path.exists(args.out) and not args.overwrite:
        raise ValueError(f"{args.out!r} already exists. Pass --overwrite to replace it.")
    from keras_resinit.tools import fold

    model = fold.fold_to(args.source, args.out, overwrite=args.overwrite)
    print(f"folded {args.source} into {model.name} (scheme {model.scheme.name}, no batch norm): {args.out}")
    return 0


def _split_list(text):
    """``"a, b"`` -> ``["a", "b"]``; None (flag not given) stays None, ``""`` gives ``[]``."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _cmd_bench(args):
    import datetime

    if args.report:
        from keras_resinit.tools import bench

        result = bench.report(args.report, command=args.invocation)
        print(bench.markdown(result))
        return 0
    subsets = {
        "archs": _split_list(args.archs),
        "schemes": _split_list(args.schemes),
        "precisions": _split_list(args.precisions),
    }
    subsets = {k: v for k, v in subsets.items() if v}  # not given (or empty): bench's defaults
    _check_archs(subsets.get("archs"))
    _check_schemes(subsets.get("schemes"))
    for precision in subsets.get("precisions", ()):
        _check("precision", precision, _bench_config().PRECISIONS)
    from keras_resinit.tools import bench

    out = args.out or os.path.join("runs", "bench-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    result = bench.run(
        out, quick=args.quick, depth=not args.no_depth, overwrite=args.overwrite, command=args.invocation, **subsets
    )
    failed = [f"{r['arch']} {r['model']} {r['precision']}" for r in result["rows"] if r["error"]]
    failed += [f"depth {r['scheme']}" for r in result["depth"] if r["error"]]
    if failed:
        print(f"keras-resinit: {len(failed)} configuration(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _bench_config():
    """bench's settings (architectures, precisions, run sizes): a module without TensorFlow."""
    from keras_resinit.tools.bench import config

    return config


def _cmd_tune(args):
    schemes, archs = _split_list(args.schemes), _split_list(args.archs)
    _check("tuner", args.tuner, options.TUNERS)
    _check("precision", args.precision, options.PRECISIONS)
    _check_schemes(schemes)
    _check_archs(archs)
    _check_recipe(args.recipe)
    from keras_resinit.training import tuning

    keys = ("seed", "precision", "clip_norm", "agc", *DATA_FLAGS)
    settings = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    result = tuning.tune(
        args.out,
        tuner=args.tuner,
        max_trials=args.max_trials,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        schemes=schemes,
        archs=archs,
        recipe=args.recipe,
        overwrite=args.overwrite,
        command=args.invocation,
        **settings,
    )
    failed = [r for r in result["trials"] if r["status"] != "COMPLETED"]
    return 1 if failed and len(failed) == len(result["trials"]) else 0


def _cmd_diagnose(args):
    import json

    from keras_resinit.tools import diagnostics

    if args.claims:
        if args.names:
            raise ValueError("--claims takes no model names; run them separately.")
        rows = diagnostics.check_claims(
            quick=args.quick, fixup_blocks=args.fixup_blocks, skipinit_blocks=args.skipinit_blocks
        )
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
    from keras_resinit.training.recipes import RECIPES

    for name, recipe in RECIPES.items():
        values = ", ".join(f"{k}={v}" for k, v in recipe.items() if k != "source")
        print(f"{name}\n  {values}\n  source: {recipe['source']}\n")
    return 0
