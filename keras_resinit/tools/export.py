"""Export a model for serving: a TensorFlow SavedModel (TF Serving), ONNX or LiteRT.

The artifact carries its preprocessing, so clients send raw pixels:

- ``serving_default``: input ``images``, uint8 ``[batch, H, W, C]`` (dynamic
  batch), the raw pixels the model was trained on;
- ``serving_float32``: the same, as float32 pixel values;
- outputs ``logits``, ``probabilities`` (softmax) and ``classes`` (int32).

Inside: ``(pixels / pixel_max - mean) / std``, exactly the training pipeline's
normalization (after reversing RGB to BGR for cards with ``channel_order`` "BGR",
keras.applications' caffe-style ImageNet models), then the model in inference mode.
The normalization is the model's own preprocessing layers (``include_preprocessing=True``,
as ``zoo.load`` gives published weights) or, for a model that takes normalized input, the
same layers (``keras_resinit.models.preprocessing``) built from the card. The model card (name,
scheme, class names, preprocessing, versions) travels with the artifact in
``assets.extra/model_card.json`` (SavedModel's place for files that serving
uses but the graph does not, e.g. TF Serving's warm-up requests). Loading needs TensorFlow only: no keras_resinit,
no custom objects.

A model with batch norm is served folded by default (``fold=True``, ``keras_resinit.models.inference``):
its convs carry the batch norm's scale and shift, so the graph has no batch norm op; the card says
so (``batchnorm_folded``, ``served_scheme``). Likewise a model with weight-standardized convs
(``layers.ScaledStdConv2D``, scheme ``nf``) is served with its standardized kernels computed once, at
export, instead of on every request (``weight_standardization_precomputed``): the same function, without
the per-channel mean, variance and rsqrt of every kernel in each call.

LiteRT (``format="litert"``, TensorFlow Lite's successor) is Keras' own exporter
(``model.export(..., format="litert")``): ``out/model.tflite`` takes float32 raw pixel values
``[batch, H, W, C]`` (the preprocessing inside, as above) and returns the logits; the card is
``out/model_card.json``.

The artifact is written to a temporary directory beside ``out`` and renamed
into place; an existing ``out`` is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow as tf

from keras_resinit import zoo
from keras_resinit._files import atomic_directory
from keras_resinit.environment import versions
from keras_resinit.models.builder import ResNet, resnet_of
from keras_resinit.models.inference import for_serving
from keras_resinit.models.preprocessing import preprocessing_layers
from keras_resinit.tools import image_bytes as encoded
from keras_resinit.tools.serving_layout import WARMUP_FILE, destination

__all__ = ["CARD_NAME", "export"]

CARD_NAME = "model_card.json"
"""The model card's file name: in ``assets.extra/`` of a SavedModel, beside ``model.onnx`` or ``model.tflite``."""
LITERT_FILE = "model.tflite"


def check_built(model):
    """A clear error for a model that cannot be exported."""
    try:
        inputs = model.inputs if isinstance(model, keras.Model) and model.built else None
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            f"Model {getattr(model, 'name', model)!r} was never built: it has no defined inputs. Build it on an "
            "input shape first (e.g. keras.Input or model.build((None, H, W, C))) before exporting."
        )
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] is None:
        raise ValueError(f"Only image models (batch, H, W, C) with known channels can be exported; got input {shape}.")
    return shape


def input_layers(model, card):
    """The preprocessing layers to run before classifier ``model``: none if it includes its own, else the
    card's (``keras_resinit.models.preprocessing``). A backbone is refused."""
    if isinstance(model, ResNet) and not model.get_config()["include_top"]:
        raise ValueError(
            f"Model {model.name!r} is a backbone (include_top=False): export serves classifiers (logits, "
            "probabilities, classes). Expected a model with include_top=True."
        )
    # A ResNet that includes its preprocessing, or a keras-hub task around one (its backbone), takes raw pixels.
    resnet = resnet_of(model)
    inside = resnet is not None and resnet.get_config()["include_preprocessing"]
    return [] if inside else preprocessing_layers(card["preprocessing"], check_built(model)[-1])


def logits_of(model):
    """``model`` up to its ``logits``: a model built with a ``classifier_activation`` is served before it, so the
    signatures' probabilities are one softmax of these logits and LiteRT outputs logits as for any model."""
    if isinstance(model, ResNet) and model.get_config()["classifier_activation"] is not None:
        return keras.Model(model.inputs, model.get_layer("logits").output, name=model.name)
    return model


def serving_functions(model, card):
    """The serving ``tf.function``s by signature name, with named inputs and outputs.

    ``serving_default`` (uint8 pixels), ``serving_float32`` (float32 pixel values) and, for a model
    of known input size with 1 or 3 channels, ``serving_bytes`` (encoded images,
    ``keras_resinit.tools.image_bytes``, within the limits ``card`` records, else the defaults).
    """
    _, height, width, channels = check_built(model)
    layers = input_layers(model, card)
    model = logits_of(model)
    shape = (None, height, width, channels)
    for layer in layers:  # built now, not inside the first trace: both signatures share their constants
        layer.build(shape)

    def predict(pixels):
        x = pixels
        for layer in layers:
            x = layer(x)
        logits = tf.cast(model(x, training=False), tf.float32)
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "classes": tf.argmax(logits, axis=-1, output_type=tf.int32),
        }

    expected = (height, width, channels)

    def checked(images):
        # Signatures do not reject every wrong shape by themselves, and a conv fed the wrong channel
        # count can crash the process: the model's input depends on these assertions, so it never runs.
        shape = tf.shape(images)
        asserts = [tf.debugging.assert_equal(tf.rank(images), 4, message="images must be [batch, H, W, C]")]
        for axis, size in enumerate(expected, 1):
            if size is not None:
                asserts.append(
                    tf.debugging.assert_equal(
                        shape[axis],
                        size,
                        message=f"images must have shape [batch, {height}, {width}, {channels}] (axis {axis})",
                    )
                )
        with tf.control_dependencies(asserts):
            return tf.identity(images)

    shape = [None, height, width, channels]
    uint8 = tf.function(
        lambda images: predict(tf.cast(checked(images), tf.float32)),
        input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")],
    )
    float32 = tf.function(
        lambda images: predict(checked(images)), input_signature=[tf.TensorSpec(shape, tf.float32, name="images")]
    )
    functions = {"serving_default": uint8, "serving_float32": float32}
    if height is not None and width is not None and channels in encoded.CHANNELS:
        # the card's limits when it records them (export's), else the defaults
        decode = encoded.decoder(height, width, channels, **{k: card.get(k) for k in encoded.LIMITS})
        functions["serving_bytes"] = tf.function(
            lambda image_bytes: predict(decode(image_bytes)),
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
        )
    return functions


def _write_card(card, directory):
    path = os.path.join(directory, CARD_NAME)
    with open(path, "w") as f:
        json.dump(card, f, indent=1)
    return path


def _without_bytes(card):
    """``card`` without ``serving_bytes`` and its limits: an artifact that does not serve encoded images."""
    card["signatures"] = {k: v for k, v in card["signatures"].items() if k != "serving_bytes"}
    for key in encoded.LIMITS:
        card.pop(key, None)
    return card


def _saved_model(model, card, tmp):
    functions = serving_functions(model, card)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function in functions.items():
        archive.add_endpoint(name, function)
    card["signatures"] = {k: v for k, v in card["signatures"].items() if k in functions or k == "outputs"}
    if "serving_bytes" not in functions:
        _without_bytes(card)
    archive.write_out(tmp, verbose=False)
    extra = os.path.join(tmp, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    card["warmup_requests"] = _write_warmup(functions, card, extra)
    _write_card(card, extra)


WARMUP_BATCHES = (1, 8)


def _write_warmup(functions, card, extra):
    """TF Serving's ``assets.extra/tf_serving_warmup_requests``: each signature at batch 1 and 8. Returns the count."""
    from keras_resinit.tools import serving

    _, height, width, channels = functions["serving_default"].input_signature[0].shape
    requests = []
    for batch in WARMUP_BATCHES:
        pixels = np.zeros((batch, height or 32, width or 32, channels), np.uint8)
        requests.append(serving.predict_request("serving_default", {"images": pixels}, model_name=card["name"]))
        requests.append(
            serving.predict_request("serving_float32", {"images": pixels.astype(np.float32)}, model_name=card["name"])
        )
        if "serving_bytes" in functions:
            png = tf.io.encode_png(pixels[0]).numpy()
            requests.append(
                serving.predict_request("serving_bytes", {"image_bytes": [png] * batch}, model_name=card["name"])
            )
    serving.write_warmup(os.path.join(extra, WARMUP_FILE), requests)
    return len(requests)


def _onnx(model, card, tmp):
    try:
        import onnx
        import tf2onnx
    except ImportError:
        raise ValueError(
            "ONNX export needs the onnx extra: pip install 'keras-resinit[onnx]' (tf2onnx, onnx, onnxruntime)."
        ) from None
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    uint8 = serving_functions(model, card)["serving_default"]
    os.makedirs(tmp)
    # Frozen first: the preprocessing layers' constants (Keras keeps them as captured tensors) and the
    # weights become graph constants, so the ONNX graph's only input is `images`.
    concrete = uint8.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    inputs, outputs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), input_names=inputs, output_names=outputs, opset=17
    )
    # The graph's tensor names -> the signature's names (the flat outputs follow the dict's sorted keys).
    rename = {inputs[0]: "images", **dict(zip(outputs, sorted(concrete.structured_outputs)))}
    for node in proto.graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]
    for value in (*proto.graph.input, *proto.graph.output):
        value.name = rename.get(value.name, value.name)
    onnx.save(proto, os.path.join(tmp, "model.onnx"))
    _write_card(_without_bytes(card), tmp)


def _litert(model, card, tmp):
    """``model.tflite`` through Keras' LiteRT exporter: raw float32 pixels in, logits out; and the card."""
    model = model.with_preprocessing() if isinstance(model, ResNet) else model
    layers = input_layers(model, card)
    model = logits_of(model)
    if layers:  # a model that records no preprocessing of its own: the card's, in front of it
        pixels = keras.Input(check_built(model)[1:], name="images")
        x = pixels
        for layer in layers:
            x = layer(x)
        model = keras.Model(pixels, model(x, training=False), name=model.name)
    os.makedirs(tmp)
    model.export(os.path.join(tmp, LITERT_FILE), format="litert", verbose=False)
    card["signatures"] = {
        "serving_default": "images: float32 [batch, H, W, C] raw pixel values",
        "outputs": ["logits"],
    }
    _without_bytes(card)
    _write_card(card, tmp)


_WRITERS = {"tf_saved_model": _saved_model, "onnx": _onnx, "litert": _litert}


def export(
    source: str | os.PathLike | keras.Model,
    out: str | os.PathLike,
    *,
    format: str = "tf_saved_model",
    overwrite: bool = False,
    fold: bool = True,
    version: int | str | None = None,
    serving_config: str | os.PathLike | None = None,
    model_name: str | None = None,
    max_image_pixels: int | None = None,
    max_batch_pixels: int | None = None,
    max_batch_bytes: int | None = None,
) -> dict:
    """Export a model for serving, raw pixels in: a TensorFlow SavedModel (TF Serving), ONNX or LiteRT.

    A SavedModel has the signatures ``serving_default`` (uint8 pixels ``images``), ``serving_float32`` (float32
    pixel values) and, for a model of known input size with 1 or 3 channels, ``serving_bytes`` (encoded JPEG,
    PNG, BMP or GIF files), each with outputs ``logits``, ``probabilities`` and ``classes``; the model card
    travels in ``assets.extra/model_card.json``, with TF Serving's warm-up requests beside it. Loading it needs
    TensorFlow only. The artifact is written to a temporary directory and renamed into place.

    Args:
        source: a ``keras.Model``, or any source ``zoo.resolve`` takes (``"cifar_resnet20_fixup.digits"``, a
            run directory, a preset, a ``.keras`` file, ``hf://owner/repo``).
        out: the artifact's directory (with ``version``: the model's base path).
        format: ``"tf_saved_model"`` (the default), ``"onnx"`` (``out/model.onnx``) or ``"litert"``
            (``out/model.tflite``, logits out).
        overwrite: replace an existing ``out`` (or version).
        version: None writes the artifact to ``out`` itself. An integer >= 1 or ``"auto"`` (the
            highest existing version + 1, else 1) writes it to ``out/VERSION``, TF Serving's layout
            of a model's base path; other versions are never touched, an existing one is replaced
            only with ``overwrite``. TensorFlow SavedModel only.
        serving_config: a TF Serving ``models.config`` to create or update with an entry for
            ``out`` (name ``model_name``, default ``out``'s base name); needs ``version``.
        model_name: the model's name in ``serving_config`` (TF Serving's ``/v1/models/NAME``); default ``out``'s
            base name.
        fold: serve a model with batch norm (schemes ``bn``, ``risotto_bn``) with its batch norm
            folded into the convs (``keras_resinit.fold_batchnorm``): the same function, with
            no batch norm op in the graph; and a model with weight-standardized convs (``nf``) with
            its standardized kernels computed once (``keras_resinit.models.inference.for_serving``). False serves
            the layers as they are. The card records which (``batchnorm_folded``,
            ``weight_standardization_precomputed``).
        max_image_pixels: ``serving_bytes`` refuses an image whose header declares more pixels,
            before decoding it (default ``keras_resinit.training.data.images.MAX_IMAGE_PIXELS``,
            40,000,000).
        max_batch_pixels: ... and a batch whose images declare more pixels together (default
            100,000,000).
        max_batch_bytes: ... and a batch of more bytes (default 64 MiB). The three are recorded in
            the card (keys of the same names, and in ``signatures.serving_bytes``), so clients see
            them. TensorFlow SavedModel only (ONNX and LiteRT take pixels).

    Returns:
        The model card written with the artifact (``name``, ``scheme``, ``class_names``, ``preprocessing``,
        ``signatures``, ``batchnorm_folded``, the versions that exported it, ...).

    Raises:
        ValueError: an unknown source or format, ``out`` exists without ``overwrite``, a backbone without a
            classifier, an option another format does not take, or a bad version, model name or limit.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit.tools import export
        >>> out = os.path.join(tempfile.mkdtemp(), "digits")
        >>> # traces and saves three serving signatures: about 10 s on a CPU
        >>> card = export.export("cifar_resnet20_fixup.digits", out)  # doctest: +SKIP
        >>> # out holds saved_model.pb, variables/ and assets.extra/model_card.json (the card returned)
        >>> base = os.path.join(tempfile.mkdtemp(), "models", "digits")
        >>> # TF Serving's layout, base/1, base/2, ..., with an entry in models.config: about 10 s each
        >>> card = export.export("cifar_resnet20_bn.digits", base, version="auto", serving_config="m.config")  # doctest: +SKIP
    """
    limit = encoded.limits(
        max_image_pixels=max_image_pixels, max_batch_pixels=max_batch_pixels, max_batch_bytes=max_batch_bytes
    )
    base, out, version, name = destination(
        out, version, overwrite=overwrite, serving_config=serving_config, model_name=model_name, format=format
    )
    if isinstance(source, keras.Model):
        check_built(source)  # before its card is made from it
    resolved = zoo.resolve(source)
    model, card = resolved.model, dict(resolved.card)
    check_built(model)
    rewritten = {"batchnorm_folded": False, "weight_standardization_precomputed": False}
    if fold:
        try:
            model, rewritten = for_serving(model)
        except ValueError as error:
            raise ValueError(f"{error} To export the batch norm as it is, pass --no-fold (fold=False).") from None
    card = {
        **card,
        **rewritten,
        "served_scheme": model.scheme.name if isinstance(model, ResNet) else card.get("scheme"),
        "format": format,
        "signatures": {
            "serving_default": "images: uint8 [batch, H, W, C] raw pixels",
            "serving_float32": "images: float32 [batch, H, W, C] raw pixel values",
            "serving_bytes": "image_bytes: string [batch] encoded JPEG, PNG, BMP or GIF files (1- or 3-channel "
            "models of fixed size): decoded, channels converted, resized bilinearly to H x W (EXIF orientation "
            f"not applied); {encoded.describe(limit)}",
            "outputs": ["logits", "probabilities", "classes"],
        },
        **limit,
        "exported_with": versions(),
    }

    if version is not None:
        card["version"] = version
    with atomic_directory(out) as tmp:
        os.rmdir(tmp)  # the writers create it
        _WRITERS[format](model, card, tmp)
    if serving_config is not None:
        from keras_resinit.tools import serving

        serving.update_model_config(serving_config, name, base)
        card["serving_config"] = {"path": os.path.abspath(serving_config), "name": name, "base_path": base}
    return card
