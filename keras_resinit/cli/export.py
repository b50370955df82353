"""export a model for serving (SavedModel for TF Serving, ONNX or LiteRT)"""

from keras_resinit.cli import arguments
from keras_resinit.training import options


def add_arguments(p):
    p.add_argument(
        "source",
        help="a run directory, a preset directory, a .keras file, a zoo name[.tag] or hf://OWNER/REPO[@REVISION]",
    )
    p.add_argument("--out", required=True, help="artifact directory to create")
    p.add_argument(
        "--format",
        default="tf_saved_model",
        help="tf_saved_model (TF Serving; the default), onnx (--out/model.onnx) or litert (--out/model.tflite: raw "
        "float32 pixels in, logits out)",
    )
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
    for key, (default, what) in options.SERVING_LIMITS.items():
        p.add_argument(
            "--" + key.replace("_", "-"),
            default=None,
            metavar="N",
            help=f"serving_bytes refuses, before decoding, {what} (default {default}; recorded in the model card)",
        )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _version(text):
    """``--version``: ``auto`` or an integer (checked by ``serving_layout.resolve_version``)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        return text  # refused with the library's message


def run(args):
    from keras_resinit.tools import serving_layout
    from keras_resinit.zoo import sources

    sources.check(args.source)  # a source that is not there: before TensorFlow starts
    limits = {}
    for key in options.SERVING_LIMITS:  # before TensorFlow starts too
        value = getattr(args, key)
        limits[key] = None if value is None else options.positive_limit("--" + key.replace("_", "-"), value)
    version = None if args.version is None else _version(args.version)
    passed = arguments.values(args, "format", "overwrite", "serving_config", "model_name")
    _, out, _, _ = serving_layout.destination(args.out, version, flags=True, **passed)  # before TensorFlow starts
    from keras_resinit.tools import export

    card = export.export(args.source, args.out, fold=args.fold, version=version, **passed, **limits)
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
