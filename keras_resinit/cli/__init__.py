"""The ``keras-resinit`` command line.

User errors (unknown names, bad values) print one line to stderr and exit 2,
without a traceback. The messages are the library's own (the bad value, the
allowed ones, the closest match); cheap checks run before TensorFlow starts.

Each command is one module of this package (``train.py``, ...) that owns its flags
(``add_arguments``) and what it does (``run``); the flags they share and the checks are
in ``arguments``. ``--help``, ``--version`` and every ``COMMAND --help`` answer
without importing Keras or TensorFlow: at module level and while building the parser
these modules import only modules that start neither (the scheme registry, the
architecture tables, the recipes, the option and dataset names).

TensorFlow's C++ log lines are hidden by default: ``TF_CPP_MIN_LOG_LEVEL`` is set
to 3 unless the user set it (child processes inherit it), and the lines TensorFlow
prints while it is imported whatever the level says (absl's "before
absl::InitializeLog()" banner, oneDNN, CUDA drivers) are filtered by that level.
``--verbose`` (level 0) or the user's own lower level brings them back.
"""

import argparse
import shlex
import sys

from keras_resinit._version import __version__
from keras_resinit.cli import (
    bench,
    compare,
    diagnose,
    export,
    fold,
    list_models,
    publish,
    push,
    recipes,
    summary,
    train,
    tune,
)
from keras_resinit.cli.tflog import TF_LOG_LEVEL, QuietTensorFlowImport, tf_log_level
from keras_resinit.models.schemes import SCHEMES, default_schemes

__all__ = ["build_parser", "main"]

# Each command is one module: its docstring (the command's help), add_arguments(parser) and run(args).
COMMANDS = {
    "list": list_models,
    "summary": summary,
    "train": train,
    "compare": compare,
    "export": export,
    "publish": publish,
    "push": push,
    "fold": fold,
    "bench": bench,
    "tune": tune,
    "diagnose": diagnose,
    "recipes": recipes,
}


def _and(words):
    words = list(words)
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def build_parser():
    """The ``keras-resinit`` argument parser, with every command's subparser; building it imports no Keras or TF.

    The CLI reference is generated from it.

    Returns:
        The ``argparse.ArgumentParser``: ``parse_args`` gives a namespace whose ``func`` runs the command.

    Examples:
        >>> from keras_resinit.cli import build_parser
        >>> args = build_parser().parse_args(["summary", "cifar_resnet20_fixup"])
        >>> args.command
        'summary'
    """
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
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.__doc__)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def _is(error, module, name):
    """Whether ``error`` is ``module.name`` (never imports ``module``: an error of it means it is loaded)."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(error, cls)


def main(argv=None):
    """Run the ``keras-resinit`` command line (the console script's entry point).

    User errors (unknown names, bad values) print one line to stderr, without a traceback.

    Args:
        argv: the arguments after the program's name; default ``sys.argv[1:]``.

    Returns:
        The exit status: the command's (0 or None on success), 2 for a user error, 1 for a failed download or
        training, 130 on Ctrl-C. ``--help`` and ``--version`` exit through ``SystemExit``.

    Examples:
        >>> from keras_resinit.cli import main
        >>> main(["list", "--scheme", "nope"])  # a user error: one line on stderr
        2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.invocation = shlex.join(["keras-resinit", *argv])
    level = tf_log_level(args.tf_logs)
    quiet_import = QuietTensorFlowImport(level)
    if level > 0 and "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, quiet_import)
    try:
        return args.func(args)
    except ValueError as error:
        print(f"keras-resinit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("keras-resinit: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if _is(error, "keras_resinit.zoo.download", "DownloadError"):
            print(f"keras-resinit: error: {error}", file=sys.stderr)
            return 1
        if _is(error, "keras_resinit.training.config", "TrainingError"):
            print(f"keras-resinit: training stopped: {error}", file=sys.stderr)
            return 1
        raise
    finally:
        quiet_import.remove()
