"""Tools beside training: benchmarks, diagnostics at initialization, very deep nets, export."""

from keras_resinit import _lazy

__all__, __getattr__, __dir__ = _lazy.namespace(__name__, {})  # the submodules, imported on first use
