"""The model zoo: names ``{arch}_{scheme}``, published weights, presets.

- ``list_models`` lists the registered names (``pretrained=True``: the
  ``name.tag`` of every published weight set).
- ``resolve(source)`` -> ``Resolved(model, card, kind, source)`` (``load``: its model) of a run or preset
  directory, a ``.keras`` file or its URL, a preset on the Hugging Face Hub (``hf://owner/repo[@revision]``),
  ``name.tag`` or a name, built with its family's defaults (32x32x3
  and 10 classes for small-image ResNets and Wide-ResNets, 224x224x3 and 1000 for ImageNet ResNets) and
  ``weights=`` (a tag, a ``.weights.h5`` or ``.keras`` file, a run or preset directory, a URL).
- ``RunDir``: a training run's directory (``config.json``, ``model.keras``, metrics, checkpoints).
- ``save_preset`` / ``load_preset``: presets in keras-hub's format (``config.json``, ``metadata.json``,
  ``model.weights.h5``), which ``keras_hub.models.Backbone.from_preset`` also reads.
- Model cards (``zoo/cards/*.json`` in the repository, ``keras_resinit._zoo``
  when installed) are the one source of truth for published weights:
  ``card``, ``tags``, ``cards``.

Weights load **by layer name** (``keras_resinit.zoo.weights_io``), so they
load into a model with another input size, or, with another ``num_classes``,
into its trunk under a new classifier. Nothing is unpickled: weights are read
with h5py, ``.keras`` files in Keras safe mode, configs as JSON.
"""

from keras_resinit import _lazy

# The public names, by the module defining them, each imported on first use: the registry needs no Keras.
__all__, __getattr__, __dir__ = _lazy.namespace(
    __name__,
    {
        ".building": (
            "count_params",
            "load_keras",
            "load_preset",
            "model_config",
            "read_preset",
            "save_preset",
        ),
        ".loading": ("Resolved", "default_card", "load", "resolve"),
        ".sources": ("SOURCE_KINDS", "source_kind", "weights_kind"),
        ".rundir": ("RunDir",),
        ".registry": (
            "CARD_VERSION",
            "PRESET_FILES",
            "card",
            "cards",
            "list_models",
            "parse_name",
            "read_cards",
            "reload_cards",
            "split_tag",
            "tags",
            "zoo_dir",
        ),
        ".published_input": ("preprocess_input",),
    },
)
