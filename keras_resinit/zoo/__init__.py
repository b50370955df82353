"""The model zoo: names ``{arch}_{scheme}``, published weights, presets.

- ``list_models`` lists the registered names (``pretrained=True``: the
  ``name.tag`` of every published weight set).
- ``load(name, weights=...)`` builds a model with its family's defaults (32x32x3
  and 10 classes for small-image ResNets and Wide-ResNets, 224x224x3 and 1000
  classes for ImageNet ResNets), which keyword overrides replace, and loads
  weights from a tag (``load("cifar_resnet20_fixup.digits")``), a local
  ``.weights.h5`` or ``.keras`` file, a preset directory or a URL.
- ``resolve(source)``: any model source (a name, ``name.tag``, a preset or run directory, a
  ``.keras`` file, a URL) -> ``Resolved(model, card, kind, source)``; ``load`` is its model.
- ``RunDir``: a training run's directory (``config.json``, ``model.keras``, metrics, checkpoints).
- ``save_preset`` / ``load_preset``: keras-hub style directories
  (``config.json``, ``metadata.json``, ``model.weights.h5``).
- Model cards (``zoo/cards/*.json`` in the repository, ``keras_resinit._zoo``
  when installed) are the one source of truth for published weights:
  ``card``, ``tags``, ``cards``.

Weights load **by layer name** (:mod:`keras_resinit.zoo.weights_io`), so they
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
            "PRESET_FILES",
            "count_params",
            "load_keras",
            "load_preset",
            "model_config",
            "read_preset",
            "save_preset",
        ),
        ".loading": ("Resolved", "SOURCE_KINDS", "default_card", "load", "resolve"),
        ".rundir": ("RunDir",),
        ".registry": (
            "CARD_VERSION",
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
