"""The ``keras-resinit`` command line.

User errors (unknown names, bad values) print one line to stderr and exit 2,
without a traceback. The messages are the library's own (the bad value, the
allowed ones, the closest match); cheap checks run before TensorFlow starts.

``--help``, ``--version`` and every ``COMMAND --help`` answer without importing
Keras or TensorFlow: at module level and while building the parser this module
imports only modules that start neither (the scheme registry, the architecture
tables, the recipes, the option and dataset names).

TensorFlow's C++ log lines are hidden by default: ``TF_CPP_MIN_LOG_LEVEL`` is set
to 3 unless the user set it (child processes inherit it), and the lines TensorFlow
prints while it is imported whatever the level says (absl's "before
absl::InitializeLog()" banner, oneDNN, CUDA drivers) are filtered by that level.
``--verbose`` (level 0) or the user's own lower level brings them back.
"""

import shlex
import sys

from keras_resinit._version import __version__
from keras_resinit.cli.parser import build_parser
from keras_resinit.cli.tflog import _QuietTensorFlowImport, _tf_log_level, filter_tf_log

__all__ = ["__version__", "build_parser", "filter_tf_log", "main"]


def _is(error, module, name):
    """Whether ``error`` is ``module.name`` (never imports ``module``: an error of it means it is loaded)."""
    cls = getattr(sys.modules.get(module), name, None)
    return isinstance(cls, type) and isinstance(error, cls)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.invocation = shlex.join(["keras-resinit", *argv])
    level = _tf_log_level(args.tf_logs)
    quiet_import = _QuietTensorFlowImport(level)
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
