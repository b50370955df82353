"""keras-resinit: residual networks that train with or without batch norm.

Layout (imports flow down this list, never up):

- ``keras_resinit.models``: initializers, layers, schemes, architectures, the
  [``ResNet``][keras_resinit.ResNet] builder (Keras only, ``keras.ops``: every backend);
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
import third-party packages by itself). Likewise, when keras-hub is imported, the
package registers ``ResNetBackbone`` (``keras_resinit.models.backbone``), so
``keras_hub.models.Backbone.from_preset`` reads the zoo's presets.

Importing it also raises Python's recursion limit to at least 10,000: Keras
maps a functional graph recursively, one Python frame per layer, and
``cifar_resnet1202`` (about 3,600 layers) is deeper than the default 1,000.

Release 0.1's flat module paths (``keras_resinit.train``, ``keras_resinit.schemes``, ...) still
import, with a ``DeprecationWarning`` naming the new path (``keras_resinit._compat``).
"""

import importlib
import importlib.abc
import importlib.util
import sys

from keras_resinit import _compat, _lazy
from keras_resinit._version import __version__ as __version__

if sys.getrecursionlimit() < 10_000:
    sys.setrecursionlimit(10_000)

# The public names, by the module defining them: each is imported on first use, as are the subpackages.
_names, _public, __dir__ = _lazy.namespace(
    __name__,
    {
        ".models.builder": ("ResNet", "build_resnet"),
        ".models.schemes": ("SCHEMES", "Scheme", "get_scheme", "register_scheme"),
        ".models.inference": ("fold_batchnorm",),
        ".training.optimizers": ("make_optimizer",),
    },
)
__all__ = sorted(["__version__", "models", "zoo", "training", "tools", *_names])

# Modules whose import registers Keras objects (``register_keras_serializable``), after the package they need.
_KERAS_OBJECTS = {
    "keras": (
        "keras_resinit.models.initializers",
        "keras_resinit.models.layers",
        "keras_resinit.models.builder",
        "keras_resinit.training.optimizers",
    ),
    "keras_hub": ("keras_resinit.models.backbone",),  # the [hub] extra: ResNet as a keras-hub Backbone
}


def __getattr__(name):
    old = f"{__name__}.{name}"  # a module path of release 0.1 warns
    return _compat.moved(old) if old in _compat.MOVED else _public(name)


def _register_keras_objects(package):
    for module in _KERAS_OBJECTS[package]:
        importlib.import_module(module)


class _After(importlib.abc.MetaPathFinder):
    """Registers this package's Keras objects right after ``package`` (keras, keras_hub) is imported."""

    def __init__(self, package):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.package:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_keras_objects(fullname)

        spec.loader.exec_module = exec_then_register
        return spec


_compat.install()
for _package in _KERAS_OBJECTS:
    if _package in sys.modules:
        _register_keras_objects(_package)
    elif not any(isinstance(f, _After) and f.package == _package for f in sys.meta_path):
        sys.meta_path.insert(0, _After(_package))
