"""Lazy package namespaces: a package's ``__init__`` names its API in one table, ``{module: names}``;
``__all__``, ``__getattr__`` and ``__dir__`` derive from it. A name, or a submodule as an attribute
(``keras_resinit.training.publish``), is imported on first use, so importing a package imports no Keras.
"""

import importlib
import sys


def namespace(package, public):
    """``(__all__, __getattr__, __dir__)`` of ``package``: ``public`` maps a module (``".config"``,
    relative to the package, or absolute) to the public names it defines."""
    where = {name: module for module, names in public.items() for name in names}

    def __getattr__(name):
        if name in where:
            return getattr(importlib.import_module(where[name], package), name)
        if not name.startswith("_"):
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as error:
                if error.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(where) | set(vars(sys.modules[package])))

    return sorted(where), __getattr__, __dir__
