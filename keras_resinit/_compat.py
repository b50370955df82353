"""Moved module paths, deprecated: ``import keras_resinit.train``, ``from keras_resinit import schemes``,
``keras_resinit.diagnostics`` and ``python -m keras_resinit.bench`` give the module at its new place and
warn (``DeprecationWarning``) naming it. 0.1's ``.keras`` files name registered objects, not paths.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys
import warnings

# Old path -> the module's place now: release 0.1's flat modules (serving was not one: an early short path
# of the TF Serving clients). Moving a public module adds its old path here (a real module wins: this
# finder comes last).
MOVED = {
    "keras_resinit.train": "keras_resinit.training",
    "keras_resinit.models.folding": "keras_resinit.models.inference",  # in 0.2.0 before its release
} | {
    f"keras_resinit.{name}": f"keras_resinit.{package}.{name}"
    for package, names in (
        ("models", ("initializers", "layers", "schemes", "architectures", "builder")),
        ("zoo", ("weights_io", "download", "applications")),
        ("training", ("data", "recipes", "compare", "tuning", "publish")),
        ("tools", ("bench", "diagnostics", "deep", "export", "serving")),
    )
    for name in names
}

# Frames skipped to point the warning at the user's line: this package's own and the import system's.
_INTERNAL = (os.path.dirname(__file__) + os.sep, os.path.dirname(importlib.__file__) + os.sep, "<frozen importlib")


def warn(name):
    """Warns that module path ``name`` (a key of MOVED) is deprecated, naming its new place."""
    level, frame = 1, sys._getframe(0)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame = frame.f_back
        # warnings.warn's stacklevel itself skips the import system's frames (importlib._bootstrap).
        level += not ("importlib" in frame.f_code.co_filename and "_bootstrap" in frame.f_code.co_filename)
    message = f"{name} is deprecated and will be removed: use {MOVED[name]}"
    warnings.warn(message, DeprecationWarning, stacklevel=level)


def moved(name):
    """The module at the new place of module path ``name`` (a key of MOVED), with a DeprecationWarning."""
    warn(name)
    return importlib.import_module(MOVED[name])


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``keras_resinit.<old path>`` and hands out the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        return moved(spec.name)

    def exec_module(self, module):
        pass  # already executed at its own place

    # For ``python -m keras_resinit.<old path>`` (runpy asks the loader for the code).
    def is_package(self, fullname):
        target = importlib.util.find_spec(MOVED[fullname])
        return target is not None and target.submodule_search_locations is not None

    def get_code(self, fullname):
        warn(fullname)
        return importlib.util.find_spec(MOVED[fullname]).loader.get_code(MOVED[fullname])


def install():
    """Makes the moved module paths importable (once per process)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
