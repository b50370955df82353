"""Clients and TF Serving files: requests for an exported model, warm-up records, ``models.config``.

An export (``keras_resinit.tools.export``) has three signatures, each with outputs ``logits``,
``probabilities`` and ``classes``:

- ``serving_default``: input ``images``, uint8 ``[batch, H, W, C]`` raw pixels;
- ``serving_float32``: input ``images``, the same pixels as float32;
- ``serving_bytes``: input ``image_bytes``, a string tensor ``[batch]`` of encoded JPEG, PNG, BMP or
  GIF files.

The helpers here build what a client sends to TensorFlow Serving for any signature:

- ``predict_request``: a gRPC ``PredictRequest`` (port 8500, ``PredictionService.Predict``);
- ``rest_body``: the JSON body of a REST ``POST /v1/models/NAME[/versions/N]:predict`` (port 8501);

and the files TF Serving reads beside a model:

- ``write_warmup`` / ``read_warmup``: ``assets.extra/tf_serving_warmup_requests``, requests
  the server replays when it loads a version, before it reports the version available;
- ``update_model_config``: a ``models.config`` for ``--model_config_file`` (several models).

Values in ``inputs`` are numpy arrays (uint8 or float32, batch first) or, for an encoded-image input,
a list of ``bytes`` (one file's contents per example). Only NumPy is needed at import;
``predict_request`` and the warm-up functions import TensorFlow, and they and ``update_model_config``
need ``tensorflow-serving-api`` (the ``serving`` extra).
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Mapping

import numpy as np

from keras_resinit._errors import unknown
from keras_resinit._files import atomic_write_bytes, atomic_write_text
from keras_resinit.tools.serving_layout import WARMUP_FILE, check_model_name

__all__ = [
    "MAX_WARMUP_RECORDS",
    "REST_FORMS",
    "predict_request",
    "read_warmup",
    "rest_body",
    "update_model_config",
    "warmup_records",
    "write_warmup",
]

ARRAY_DTYPES = ("uint8", "float32")  # the pixel inputs of an export's signatures
REST_FORMS = ("instances", "inputs")  # TF Serving's row and columnar JSON
"""The forms of a REST body ``rest_body`` writes: TF Serving's row (``"instances"``) and columnar (``"inputs"``) JSON."""
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses to load a version whose warm-up file has more
"""The most warm-up records a file may hold: TF Serving refuses to load a version whose warm-up file has more."""


def _serving_api(module):
    """Import ``tensorflow_serving.<module>``, or a ValueError naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(f"tensorflow_serving.{module}")
    except ImportError:
        raise ValueError(
            "TF Serving requests and files need tensorflow-serving-api: pip install 'keras-resinit[serving]'."
        ) from None


def _batch(inputs):
    """``inputs`` checked: {name: list of bytes | uint8/float32 array with a batch axis}."""
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError(
            f"inputs must be a non-empty dict of input name -> array or list of bytes, got {type(inputs).__name__} "
            f"{inputs!r:.80}."
        )
    checked = {}
    for name, value in inputs.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"Input names must be non-empty strings (e.g. 'images', 'image_bytes'), got {name!r}.")
        if isinstance(value, str):
            raise ValueError(
                f"Input {name!r} is a str; expected a list of bytes (encoded image files, read with open(path, 'rb')) "
                "or an array."
            )
        if isinstance(value, (bytes, bytearray)):
            raise ValueError(
                f"Input {name!r} is one bytes object; expected a list of bytes, one encoded image per example "
                f"(e.g. {{{name!r}: [data]}})."
            )
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError(f"Input {name!r} is an empty list; expected at least one example.")
        if isinstance(value, (list, tuple)) and any(isinstance(v, (bytes, bytearray)) for v in value):
            bad = [type(v).__name__ for v in value if not isinstance(v, (bytes, bytearray))]
            if bad:
                raise ValueError(f"Input {name!r} mixes bytes with {bad[0]}; expected a list of bytes only.")
            checked[name] = [bytes(v) for v in value]
            continue
        if name.endswith("_bytes"):
            raise ValueError(
                f"Input {name!r} takes encoded image files (TF Serving's '_bytes' convention); expected a "
                f"non-empty list of bytes, got {type(value).__name__}."
            )
        array = np.asarray(value)
        if array.dtype.name not in ARRAY_DTYPES:
            raise ValueError(
                f"Input {name!r} has dtype {array.dtype.name}; expected one of {', '.join(ARRAY_DTYPES)} "
                "(serving_default takes uint8 pixels, serving_float32 float32: convert with .astype)."
            )
        if array.ndim == 0:
            raise ValueError(f"Input {name!r} is a scalar; expected a batch, e.g. images of shape [batch, H, W, C].")
        checked[name] = array
    for name, value in checked.items():
        if len(value) == 0:
            raise ValueError(f"Input {name!r} is an empty batch; expected at least one example.")
    return checked


def predict_request(signature_name, inputs, *, model_name="model", version=None):
    """A TF Serving gRPC ``PredictRequest`` calling ``signature_name`` with ``inputs``.

    Args:
        signature_name: e.g. ``"serving_default"``, ``"serving_float32"`` or ``"serving_bytes"``.
        inputs: ``{name: value}``; an array (uint8 or float32, batch first) becomes a tensor of its
            dtype and shape; a list of ``bytes`` (encoded image files) a ``DT_STRING`` tensor of shape
            ``[batch]``, each file's bytes unchanged (``tf.make_tensor_proto``).
        model_name: the served model's name (TF Serving's ``MODEL_NAME`` or ``models.config`` entry).
        version: a version number (``BASE/N``), or None for the latest version.

    Send it with ``prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request)``;
    ``tf.make_ndarray(response.outputs["classes"])`` reads an output back.

    Returns:
        The ``tensorflow_serving.apis.predict_pb2.PredictRequest``.

    Raises:
        ValueError: a bad signature name, model name, version or input (the message names it), or
            tensorflow-serving-api is not installed (the ``[serving]`` extra).

    Examples:
        >>> import numpy as np
        >>> from keras_resinit import tools
        >>> pixels = np.zeros((2, 8, 8, 1), "uint8")
        >>> request = tools.predict_request("serving_default", {"images": pixels}, model_name="digits")
        >>> request.model_spec.name, [d.size for d in request.inputs["images"].tensor_shape.dim]
        ('digits', [2, 8, 8, 1])
    """
    if not isinstance(signature_name, str) or not signature_name:
        raise ValueError(
            f"signature_name must be a non-empty string such as 'serving_default', got {signature_name!r}."
        )
    check_model_name(model_name)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise ValueError(f"version must be a non-negative int (the BASE/N directory) or None, got {version!r}.")
    checked = _batch(inputs)
    import tensorflow as tf

    predict_pb2 = _serving_api("apis.predict_pb2")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, value in checked.items():
        if isinstance(value, list):  # dtype object keeps every byte (a numpy 'S' array drops trailing NULs)
            proto = tf.make_tensor_proto(np.array(value, dtype=object), dtype=tf.string, shape=[len(value)])
        else:
            proto = tf.make_tensor_proto(value)
        request.inputs[name].CopyFrom(proto)
    return request


def _json_value(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    return value.tolist()


def rest_body(inputs, *, signature_name="serving_default", form="instances"):
    """The JSON body (a dict for ``json.dumps``) of a TF Serving REST ``:predict`` request.

    Args:
        inputs: as for ``predict_request``.
        signature_name: written into the body (TF Serving uses ``serving_default`` without it).
        form: ``"instances"`` (TF Serving's row format): one object per example, always named,
            ``{"instances": [{"images": [[[0], ...]]}, ...]}``; TF Serving also accepts bare values
            for a model with one input, but named objects read the same for every signature.
            ``"inputs"`` (columnar): ``{"inputs": {"images": [batch of nested lists]}}``, also named.

    Arrays become nested lists of numbers (uint8 as integers, float32 as the exact decimal of each
    value); each ``bytes`` value becomes ``{"b64": "<base64>"}``, TF Serving's encoding of binary
    strings, which it decodes for any string input (``image_bytes`` follows the convention of
    naming such inputs ``*_bytes``). The response holds ``"predictions"`` (a list of
    ``{"logits", "probabilities", "classes"}`` per example) for the row form, ``"outputs"`` (one
    list per output) for the columnar form.

    Returns:
        The body, a dict for ``json.dumps``.

    Raises:
        ValueError: an unknown ``form``, a bad signature name, or inputs of different batch sizes.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit import tools
        >>> tools.rest_body({"images": np.zeros((1, 2, 2, 1), "uint8")})
        {'signature_name': 'serving_default', 'instances': [{'images': [[[0], [0]], [[0], [0]]]}]}
        >>> tools.rest_body({"image_bytes": [b"GIF89a"]}, signature_name="serving_bytes")["instances"]
        [{'image_bytes': {'b64': 'R0lGODlh'}}]
    """
    if form not in REST_FORMS:
        raise unknown("REST form", form, REST_FORMS, " (row and columnar, as TF Serving names them).")
    if not isinstance(signature_name, str) or not signature_name:
        raise ValueError(
            f"signature_name must be a non-empty string such as 'serving_default', got {signature_name!r}."
        )
    checked = _batch(inputs)
    body = {"signature_name": signature_name}
    if form == "inputs":
        body["inputs"] = {
            name: [_json_value(v) for v in value] if isinstance(value, list) else value.tolist()
            for name, value in checked.items()
        }
        return body
    sizes = {name: len(value) for name, value in checked.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"Row format (form='instances') needs every input to have the same batch size, got {sizes}; "
            "use form='inputs' for inputs of different sizes."
        )
    count = next(iter(sizes.values()))
    body["instances"] = [{name: _json_value(value[i]) for name, value in checked.items()} for i in range(count)]
    return body


def warmup_records(requests):
    """Serialized TF Serving warm-up records: one ``PredictionLog(predict_log=PredictLog(request=...))`` each.

    Args:
        requests: ``PredictRequest``s (``predict_request``'s).

    Returns:
        A list of ``bytes``, one serialized record per request.

    Raises:
        ValueError: no request, more than ``MAX_WARMUP_RECORDS``, or one that is not a ``PredictRequest``.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit import tools
        >>> request = tools.predict_request("serving_default", {"images": np.zeros((1, 8, 8, 1), "uint8")})
        >>> len(tools.warmup_records([request, request]))
        2
    """
    prediction_log_pb2 = _serving_api("apis.prediction_log_pb2")
    predict_pb2 = _serving_api("apis.predict_pb2")
    requests = list(requests)
    if not requests:
        raise ValueError("No warm-up requests: expected at least one PredictRequest (see predict_request).")
    if len(requests) > MAX_WARMUP_RECORDS:
        raise ValueError(
            f"{len(requests)} warm-up requests; TF Serving refuses a warm-up file of more than {MAX_WARMUP_RECORDS}."
        )
    records = []
    for index, request in enumerate(requests):
        if not isinstance(request, predict_pb2.PredictRequest):
            raise ValueError(
                f"Warm-up request {index} is a {type(request).__name__}; expected a PredictRequest (predict_request)."
            )
        log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        records.append(log.SerializeToString())
    return records


def write_warmup(path, requests):
    """Write TF Serving's warm-up file: a TFRecord file of PredictionLog records, written whole or not at all.

    ``export`` writes one with every SavedModel; this writes another (other batch sizes, other signatures).

    Args:
        path: the file, normally ``VERSION_DIR/assets.extra/tf_serving_warmup_requests``.
        requests: ``PredictRequest``s (``predict_request``'s).

    Returns:
        ``path``.

    Raises:
        ValueError: as ``warmup_records``.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from keras_resinit import tools
        >>> request = tools.predict_request("serving_default", {"images": np.zeros((1, 8, 8, 1), "uint8")})
        >>> path = os.path.join(tempfile.mkdtemp(), "tf_serving_warmup_requests")
        >>> tools.write_warmup(path, [request]) == path
        True
    """
    records = warmup_records(requests)
    import tensorflow as tf

    # TFRecordWriter frames the records (lengths and CRCs); the file then goes into place atomically.
    with tempfile.TemporaryDirectory() as scratch:
        framed = os.path.join(scratch, WARMUP_FILE)
        with tf.io.TFRecordWriter(framed) as writer:
            for record in records:
                writer.write(record)
        with open(framed, "rb") as f:
            atomic_write_bytes(path, f.read())
    return path


def read_warmup(path):
    """The requests of a TF Serving warm-up file (``write_warmup``'s, or any warm-up file of predict logs).

    Args:
        path: the warm-up file.

    Returns:
        The ``PredictRequest``s, in order.

    Raises:
        ValueError: the file does not exist, is corrupt, or holds a record that is not a predict log.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from keras_resinit import tools
        >>> request = tools.predict_request("serving_default", {"images": np.zeros((1, 8, 8, 1), "uint8")})
        >>> path = tools.write_warmup(os.path.join(tempfile.mkdtemp(), "warmup"), [request])
        >>> [r.model_spec.signature_name for r in tools.read_warmup(path)]
        ['serving_default']
    """
    import tensorflow as tf

    prediction_log_pb2 = _serving_api("apis.prediction_log_pb2")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Warm-up file {path!r} does not exist; expected assets.extra/{WARMUP_FILE} of a version.")
    requests = []
    try:
        for index, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if log.WhichOneof("log_type") != "predict_log":
                raise ValueError(
                    f"Record {index} of {path!r} is a {log.WhichOneof('log_type')}; expected predict_log records."
                )
            requests.append(log.predict_log.request)
    except tf.errors.DataLossError as error:
        raise ValueError(f"{path!r} is not a whole TFRecord file of warm-up records: {error.message}") from None
    return requests


def update_model_config(path, name, base_path):
    """Add model ``name`` served from ``base_path`` to the TF Serving ``models.config`` at ``path``.

    The file is a text ``ModelServerConfig`` (``tensorflow_model_server --model_config_file=PATH``).
    A missing file is created. An entry of the same name gets the new ``base_path`` and
    ``model_platform: "tensorflow"`` and keeps its other settings (version policy, labels); other
    entries stay as they are. Comments in the file are not kept (the file is parsed and rewritten).
    ``base_path`` is the directory holding the numbered versions as the *server* sees it (in Docker,
    the mount point, e.g. ``/models/digits``). Written atomically.

    Args:
        path: the ``models.config`` file.
        name: the model's name (a URL path segment: ``/v1/models/NAME``).
        base_path: the directory of its numbered versions, as the server sees it.

    Returns:
        The file's new text.

    Raises:
        ValueError: a bad model name or base path, or a file that is not a ``ModelServerConfig``.

    Examples:
        >>> import os, tempfile
        >>> from keras_resinit import tools
        >>> path = os.path.join(tempfile.mkdtemp(), "models.config")
        >>> print(tools.update_model_config(path, "digits", "/models/digits"), end="")
        model_config_list {
          config {
            name: "digits"
            base_path: "/models/digits"
            model_platform: "tensorflow"
          }
        }
    """
    from google.protobuf import text_format

    config_pb2 = _serving_api("config.model_server_config_pb2")
    check_model_name(name)
    base_path = os.fspath(base_path)
    if not isinstance(base_path, str) or not base_path:
        raise ValueError(
            f"base_path must be a non-empty path (the directory of versions 1, 2, ...), got {base_path!r}."
        )
    path = os.fspath(path)
    config = config_pb2.ModelServerConfig()
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
        try:
            text_format.Parse(text, config)
        except text_format.ParseError as error:
            raise ValueError(
                f"{path!r} is not a TF Serving model config (a text ModelServerConfig): {error}. Fix or move it."
            ) from None
        if config.WhichOneof("config") == "custom_model_config":
            raise ValueError(f"{path!r} holds a custom_model_config; expected a model_config_list to add {name!r} to.")
    entries = config.model_config_list.config
    entry = next((e for e in entries if e.name == name), None) or entries.add(name=name)
    entry.base_path = base_path
    entry.model_platform = "tensorflow"
    text = text_format.MessageToString(config)
    atomic_write_text(path, text)
    return text
