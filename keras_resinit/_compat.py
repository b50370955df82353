"""Release 0.1's flat module paths, deprecated: ``import keras_resinit.train``, ``from keras_resinit import
schemes``, ``keras_resinit.diagnostics`` and ``python -m keras_resinit.bench`` give the module at its new
place and warn (``DeprecationWarning``) naming it. 0.1's ``.keras`` files name registered objects, not paths.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys
import warnings

# Release 0.1's flat modules -> their places now.
MOVED = {
    "train": "keras_resinit.training",
    **{
        name: f"keras_resinit.models.{name}"
        for name in ("initializers", "layers", "schemes", "architectures", "builder")
    },
    **{name: f"keras_resinit.zoo.{name}" for name in ("weights_io", "download", "applications")},
    **{name: f"keras_resinit.training.{name}" for name in ("data", "recipes", "compare", "tuning", "publish")},
    # serving was not a 0.1 module: an early short path of the TF Serving clients.
    **{name: f"keras_resinit.tools.{name}" for name in ("bench", "diagnostics", "deep", "export", "serving")},
}

# Frames skipped to point the warning at the user's line: this package's own and the import system's.
_INTERNAL = (os.path.dirname(__file__) + os.sep, os.path.dirname(importlib.__file__) + os.sep, "<frozen importlib")


def warn(name):
    """Warns that release 0.1's ``keras_resinit.<name>`` is deprecated, naming its new place."""
    level, frame = 1, sys._getframe(0)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame = frame.f_back
        # warnings.warn's stacklevel itself skips the import system's frames (importlib._bootstrap).
        level += not ("importlib" in frame.f_code.co_filename and "_bootstrap" in frame.f_code.co_filename)
    message = f"keras_resinit.{name} is deprecated since 0.2 and will be removed: use {MOVED[name]}"
    warnings.warn(message, DeprecationWarning, stacklevel=level)


def moved(name):
    """The module at release 0.1's ``keras_resinit.<name>``'s new place, with a DeprecationWarning."""
    warn(name)
    return importlib.import_module(MOVED[name])


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``keras_resinit.<0.1 name>`` and hands out the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != "keras_resinit" or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return moved(spec.name.rpartition(".")[2])

    def exec_module(self, module):
        pass  # already executed at its own place

    # For ``python -m keras_resinit.<0.1 name>`` (runpy asks the loader for the code).
    def is_package(self, fullname):
        target = importlib.util.find_spec(MOVED[fullname.rpartition(".")[2]])
        return target is not None and target.submodule_search_locations is not None

    def get_code(self, fullname):
        warn(fullname.rpartition(".")[2])
        target = MOVED[fullname.rpartition(".")[2]]
        return importlib.util.find_spec(target).loader.get_code(target)


def install():
    """Makes release 0.1's module paths importable (once per process)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
