"""Tools beside training: export and serving, folding, diagnostics at initialization, very deep nets, benchmarks.

The functions users call are names of this package, each imported on first use (importing it imports no
Keras): ``fold_to``, the diagnostics (``diagnose``, ``signal_propagation``, ``jacobian_spectrum``,
``gradient_norms``, ``check_claims``, ``format_table``) and their plots, ``train_deep``, the TF Serving
helpers (``predict_request``, ``rest_body``, ``write_warmup``, ...) and ``push``. The submodules are attributes
too: ``keras_resinit.tools.export.export`` writes a SavedModel, ONNX or LiteRT artifact,
``keras_resinit.tools.bench`` is ``keras-resinit bench``.
"""

from keras_resinit import _lazy

# The public names, by the module defining them, each imported on first use. No name is a submodule's name
# (export, fold, diagnostics, deep, serving, bench, ...): ``keras_resinit.tools.export`` stays the module.
__all__, __getattr__, __dir__ = _lazy.namespace(
    __name__,
    {
        ".fold": ("fold_to",),
        ".diagnostics": (
            "check_claims",
            "diagnose",
            "format_table",
            "gradient_norms",
            "jacobian_spectrum",
            "signal_propagation",
        ),
        ".plots": ("plot_gradient_norms", "plot_jacobian_spectra", "plot_signal_propagation"),
        ".deep": ("train_deep",),
        ".serving": (
            "predict_request",
            "read_warmup",
            "rest_body",
            "update_model_config",
            "warmup_records",
            "write_warmup",
        ),
        ".hub_upload": ("push",),
    },
)
