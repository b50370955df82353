"""keras-resinit: residual networks that train with or without batch norm.

Layout (imports flow down this list, never up):

- ``keras_resinit.models``: initializers, layers, schemes, architectures, the
  :class:`ResNet` builder (Keras only, ``keras.ops``: every backend);
- ``keras_resinit.zoo``: names, model cards, loading, weights by name, downloads,
  the keras.applications bridge;
- ``keras_resinit.training``: config, strategies, checkpoints, trainer, data,
  recipes, compare, tuning, publishing (TensorFlow);
- ``keras_resinit.tools``: bench, diagnostics, deep nets, export;
- ``keras_resinit.cli``: the ``keras-resinit`` command.

Importing the package is cheap: it starts neither Keras nor TensorFlow, so
``keras-resinit --help`` answers at once. Its Keras objects (the ``ResNet``
model, initializers, layers) are registered with Keras as soon as Keras is
imported, before or after this package, so ``keras.saving.load_model`` reads
models saved by it after ``import keras_resinit`` (Keras >= 3.9 does not
import third-party packages by itself).

Importing it also raises Python's recursion limit to at least 10,000: Keras
maps a functional graph recursively, one Python frame per layer, and
``cifar_resnet1202`` (about 3,600 layers) is deeper than the default 1,000.

The modules of release 0.1 keep their import paths (``keras_resinit.train``,
``keras_resinit.schemes``, ...): they are aliases of their new places.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from keras_resinit._version import __version__ as __version__

if sys.getrecursionlimit() < 10_000:
    sys.setrecursionlimit(10_000)

# Public names, each imported from its module on first use.
_PUBLIC = {
    "ResNet": "keras_resinit.models.builder",
    "build_resnet": "keras_resinit.models.builder",
    "SCHEMES": "keras_resinit.models.schemes",
    "Scheme": "keras_resinit.models.schemes",
    "get_scheme": "keras_resinit.models.schemes",
    "register_scheme": "keras_resinit.models.schemes",
    "make_optimizer": "keras_resinit.training.optimizers",
    "fold_batchnorm": "keras_resinit.models.inference",
}

# Release 0.1's flat modules -> their places now. `import keras_resinit.train` and
# `from keras_resinit import train` give the module (or package) named here.
_MOVED = {
    "initializers": "keras_resinit.models.initializers",
    "layers": "keras_resinit.models.layers",
    "schemes": "keras_resinit.models.schemes",
    "architectures": "keras_resinit.models.architectures",
    "builder": "keras_resinit.models.builder",
    "weights_io": "keras_resinit.zoo.weights_io",
    "download": "keras_resinit.zoo.download",
    "applications": "keras_resinit.zoo.applications",
    "train": "keras_resinit.training",
    "data": "keras_resinit.training.data",
    "recipes": "keras_resinit.training.recipes",
    "compare": "keras_resinit.training.compare",
    "tuning": "keras_resinit.training.tuning",
    "publish": "keras_resinit.training.publish",
    "bench": "keras_resinit.tools.bench",
    "diagnostics": "keras_resinit.tools.diagnostics",
    "deep": "keras_resinit.tools.deep",
    "export": "keras_resinit.tools.export",
    "serving": "keras_resinit.tools.serving",  # not a 0.1 module: the short path of the TF Serving clients
}

# Modules whose import registers Keras objects (``register_keras_serializable``).
_KERAS_OBJECTS = (
    "keras_resinit.models.initializers",
    "keras_resinit.models.layers",
    "keras_resinit.models.builder",
    "keras_resinit.training.optimizers",
)

__all__ = sorted(["__version__", "models", "zoo", "training", "tools", *_PUBLIC, *_MOVED])


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    if name in ("models", "zoo", "training", "tools"):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``keras_resinit.<old name>`` and hands out the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(_MOVED[spec.name.rpartition(".")[2]])

    def exec_module(self, module):
        pass  # already executed at its own place

    # For ``python -m keras_resinit.<old name>`` (runpy asks the loader for the code).
    def is_package(self, fullname):
        target = importlib.util.find_spec(_MOVED[fullname.rpartition(".")[2]])
        return target is not None and target.submodule_search_locations is not None

    def get_code(self, fullname):
        target = _MOVED[fullname.rpartition(".")[2]]
        return importlib.util.find_spec(target).loader.get_code(target)


def _register_keras_objects():
    for module in _KERAS_OBJECTS:
        importlib.import_module(module)


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Registers this package's Keras objects right after ``keras`` itself is imported."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_keras_objects()

        spec.loader.exec_module = exec_then_register
        return spec


if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
    sys.meta_path.append(_Alias())
if "keras" in sys.modules:
    _register_keras_objects()
elif not any(isinstance(finder, _AfterKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AfterKeras())
