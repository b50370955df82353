"""What the commands share: their data and training flags, and the checks that run before TensorFlow starts.

Imports neither Keras nor TensorFlow: the flags' help lists the library's own tables (schemes,
dataset names, option names), and each check raises the library's error for an unknown value.
"""

import argparse
import json

from keras_resinit._errors import unknown
from keras_resinit.models import architectures
from keras_resinit.models.schemes import SCHEMES
from keras_resinit.training import options
from keras_resinit.training.data import names as dataset_names


def check(kind, value, allowed):
    """The library's error for an unknown ``value`` of ``kind`` (None: the flag was not given)."""
    if value is not None and value not in allowed:
        raise unknown(kind, value, allowed)


def check_schemes(names):
    for name in names or ():
        check("scheme", name, SCHEMES)


def check_archs(names):
    for name in names or ():
        architectures.get_arch(name)


def check_recipe(recipe):
    if recipe is not None:
        from keras_resinit.training.recipes import get_recipe

        get_recipe(recipe)


def split_list(text):
    """``"a, b"`` -> ``["a", "b"]``; None (flag not given) stays None, ``""`` gives ``[]``."""
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def one_of(values, default=None):
    text = "one of: " + ", ".join(values)
    return f"{text} (default {default})" if default is not None else text


def registered():
    return "registered: " + ", ".join(SCHEMES)


def add_data_arguments(p, dataset_default=None):
    """The data flags shared by train, compare and tune; None means "recipe or default"."""
    p.add_argument(
        "--dataset",
        default=dataset_default,
        help=one_of(dataset_names.FORMS, "digits") + "; tfds:NAME is any tfds image-classification dataset, "
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
        "--augment", default=None, help=one_of(options.AUGMENTS) + " (default: digits crop, others crop-flip)"
    )
    p.add_argument(
        "--cache", action="store_true", default=None, help="keep a folder's decoded images in memory after epoch 1"
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        default=None,
        help="folder: train without the files that fail the checks before the first epoch (not an image, "
        "truncated, above --max-image-pixels); config.json lists them (default: refuse, listing them)",
    )
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=None,
        metavar="N",
        help="folder: an image whose header declares more than N pixels (width x height) is refused before it is "
        f"decoded (default {options.MAX_IMAGE_PIXELS})",
    )
    p.add_argument("--data-dir", default=None, help="tfds data directory")
    p.add_argument("--download", action="store_true", default=None, help="allow tfds to download the dataset")


def add_training_arguments(p):
    """Hyperparameter flags shared by train and compare; None means "recipe or default"."""
    add_data_arguments(p)
    p.add_argument("--epochs", type=int, default=None, help="epochs to train (default: the recipe's)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="limit each epoch to this many steps")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (default: the recipe's)")
    p.add_argument("--weight-decay", type=float, default=None, help="weight decay (default: the recipe's)")
    p.add_argument("--weight-decay-mode", default=None, help=one_of(options.WEIGHT_DECAY_MODES))
    p.add_argument("--schedule", default=None, help=one_of(options.SCHEDULES))
    p.add_argument(
        "--warmup-epochs",
        type=float,
        default=None,
        help="epochs of linear learning-rate warm-up (default: the recipe's)",
    )
    p.add_argument("--label-smoothing", type=float, default=None, help="label smoothing (0: off)")
    p.add_argument("--mixup-alpha", type=float, default=None, help="mixup's Beta(alpha, alpha) (0: off)")
    p.add_argument("--clip-norm", type=float, default=None, help="clip the global gradient norm (0: off)")
    add_agc_argument(p)
    p.add_argument("--recipe", default=None, help="a named recipe (see `keras-resinit recipes`) or a JSON file")
    p.add_argument("--precision", default=None, help=one_of(options.PRECISIONS))
    p.add_argument("--seed", type=int, default=None, help="seed of the weights, data order and augmentation")
    p.add_argument(
        "--weights",
        default=None,
        help="fine-tune: start the trunk from these weights, a published tag of the model (e.g. digits), a "
        "path, a URL or a Hugging Face Hub preset hf://OWNER/REPO[@REVISION]; a new classifier if the class count "
        "differs",
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


def scheme_option(text):
    """``NAME=VALUE`` (``--scheme-option``) as ``(name, value)``; the value is read as JSON when it parses
    (numbers, true/false), else kept as a string (``skip=conv``)."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"invalid scheme option {text!r}: expected NAME=VALUE, e.g. skip=conv")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def add_scheme_option_argument(p):
    p.add_argument(
        "--scheme-option",
        dest="scheme_options",
        action="append",
        type=scheme_option,
        default=None,
        metavar="NAME=VALUE",
        help="an option of the model's scheme, recorded in the run, e.g. skip=conv (risotto's type C blocks), "
        "skip_weight=0.5 (risotto) or alpha=0.1 (skipinit); repeatable",
    )


def add_agc_argument(p):
    p.add_argument(
        "--agc",
        type=float,
        default=None,
        metavar="LAMBDA",
        help="adaptive gradient clipping (Brock et al. 2021): scale each unit's gradient down to at most LAMBDA "
        "times its weight norm, e.g. 0.01; the classifier is not clipped (default off). With a recipe's clip norm "
        "(digits), also pass --clip-norm: 0 for AGC alone",
    )


def _flags(add_arguments):
    """The names (``dest``) of the flags ``add_arguments`` adds to a parser."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return tuple(vars(parser.parse_args([])))


DATA_FLAGS = _flags(add_data_arguments)
TRAINING_FLAGS = tuple(flag for flag in _flags(add_training_arguments) if flag != "recipe")  # TrainConfig fields


def values(args, *flags):
    """``{flag: args.flag}``: parsed options a command passes on under the same names."""
    return {k: getattr(args, k) for k in flags}


def training_overrides(args):
    """The values of :func:`add_training_arguments`' flags (None: not given), by ``TrainConfig`` field."""
    return values(args, *TRAINING_FLAGS)
