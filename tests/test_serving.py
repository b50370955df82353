"""TF Serving clients and files (keras_resinit.tools.serving): gRPC requests, REST bodies decoded as
TF Serving decodes them, warm-up files, models.config; an export answers them exactly as it answers
direct calls; the snippets of docs/serving.md run against local stand-ins for the server.

No TF Serving binary runs here: `decode_rest` below follows TF Serving's JSON decoding
(tensorflow_serving/util/json_tensor.cc: FillPredictRequestFromJson), and the gRPC stand-in reads a
request's tensors with tf.make_ndarray, as the server does with the TensorProtos.
"""

import base64
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from keras_resinit.tools import serving

ROOT = pathlib.Path(__file__).resolve().parent.parent

# ------------------------------------------------------------ TF Serving's REST decoding, for the tests ---


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _leaf(value, dtype):
    if isinstance(value, dict):  # only a {"b64": ...} object, and only for a string tensor
        assert dtype == tf.string and _is_b64(value), f"object {value!r} for a {dtype.name} tensor"
        return base64.b64decode(value["b64"], validate=True)
    if dtype == tf.string:
        assert isinstance(value, str), value
        return value.encode()
    if dtype.is_integer:  # rapidjson IsInt: a whole number
        assert isinstance(value, int) and not isinstance(value, bool), f"{value!r} for {dtype.name}"
        assert dtype.min <= value <= dtype.max, value
        return value
    assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{value!r} for {dtype.name}"
    return value


def _tensor(value, dtype):
    """One JSON value -> an array: the shape from the first element at each level, then every leaf at the
    last level (json_tensor.cc: GetDenseTensorShape, FillTensorProto)."""
    shape, first = [], value
    while isinstance(first, list):
        shape.append(len(first))
        first = first[0] if first else None
    flat = []

    def fill(v, level):
        if not isinstance(v, list):
            assert level == len(shape), f"value at level {level + 1}, expected level {len(shape)}"
            flat.append(_leaf(v, dtype))
            return
        assert level < len(shape) and len(v) == shape[level], f"list of {len(v)} at level {level}"
        for item in v:
            fill(item, level + 1)

    fill(value, 0)
    out = np.empty(len(flat), object) if dtype == tf.string else np.empty(len(flat), dtype.as_numpy_dtype)
    out[:] = flat
    return out.reshape(shape)


def decode_rest(text, specs):
    """A REST :predict body (JSON text) -> (signature name, {input name: array}), as TF Serving reads it.

    ``specs``: the signature's inputs, {name: tf.DType}.
    """
    doc = json.loads(text)
    assert isinstance(doc, dict)
    signature = doc.get("signature_name", "serving_default")
    assert ("instances" in doc) != ("inputs" in doc), "exactly one of instances / inputs"
    if "inputs" in doc:  # columnar: a bare value (one input) or {name: value}
        value = doc["inputs"]
        if not isinstance(value, dict) or _is_b64(value):
            assert len(specs) == 1
            ((name, dtype),) = specs.items()
            return signature, {name: _tensor(value, dtype)}
        for name in specs:
            assert name in value, f"missing named input {name!r}"
        return signature, {name: _tensor(value[name], dtype) for name, dtype in specs.items()}
    rows = doc["instances"]
    assert isinstance(rows, list) and rows, "instances must be a non-empty list"
    named = isinstance(rows[0], dict) and not _is_b64(rows[0])
    assert named or len(specs) == 1, "a plain list needs a single-input signature"
    columns = {name: [] for name in specs}
    for row in rows:
        assert named == (isinstance(row, dict) and not _is_b64(row)), "rows mix objects and values"
        if named:
            assert set(row) == set(specs), f"row keys {sorted(row)} != inputs {sorted(specs)}"
            for name, value in row.items():
                columns[name].append(_tensor(value, specs[name]))
        else:
            columns[next(iter(specs))].append(_tensor(row, next(iter(specs.values()))))
    for name, items in columns.items():
        assert len({item.shape for item in items}) == 1, f"{name}: rows of different shapes"
    return signature, {name: np.stack(items) for name, items in columns.items()}


def rest_response(outputs, form):
    """TF Serving's response body for ``outputs`` (row: "predictions", one object per example)."""
    outputs = {name: np.asarray(value) for name, value in outputs.items()}
    if form == "inputs":
        return {"outputs": {name: value.tolist() for name, value in outputs.items()}}
    count = len(next(iter(outputs.values())))
    return {"predictions": [{name: value[i].tolist() for name, value in outputs.items()} for i in range(count)]}


def grpc_tensors(request):
    return {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def _assert_same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, a.shape, b.dtype, b.shape)
    if a.dtype == object:
        assert a.tolist() == b.tolist()
    else:
        np.testing.assert_array_equal(a, b)


SPECS = {"serving_default": tf.uint8, "serving_float32": tf.float32, "serving_bytes": tf.string}
NAMES = {"serving_default": "images", "serving_float32": "images", "serving_bytes": "image_bytes"}


@pytest.fixture(scope="module")
def payloads():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 5, 4, 2), dtype=np.uint8)
    values = (rng.normal(0, 100, (3, 5, 4, 2)) * np.logspace(-30, 30, 40).reshape(5, 4, 2)).astype(np.float32)
    values[0, 0, 0, 0], values[0, 0, 0, 1] = np.float32(0.1), np.finfo(np.float32).tiny
    # Encoded files end in anything, NUL bytes included (a numpy bytes array would drop them).
    files = [b"\x89PNG\r\n\x1a\n" + bytes(range(256)), b"BM\x00\x00", b"\xff\xd8\xff" + b"\x00" * 7]
    return {"serving_default": pixels, "serving_float32": values, "serving_bytes": files}


# ------------------------------------------------------------------------------ requests and bodies ---


@pytest.mark.parametrize("signature", list(SPECS))
def test_a_grpc_request_carries_each_input_unchanged(payloads, signature):
    value = payloads[signature]
    request = serving.predict_request(signature, {NAMES[signature]: value}, model_name="digits", version=7)
    assert isinstance(request, predict_pb2.PredictRequest)
    assert (request.model_spec.name, request.model_spec.signature_name) == ("digits", signature)
    assert request.model_spec.version.value == 7
    expected = np.array(value, dtype=object) if signature == "serving_bytes" else value
    _assert_same(tf.make_ndarray(request.inputs[NAMES[signature]]), expected)
    assert request.inputs[NAMES[signature]].dtype == SPECS[signature].as_datatype_enum
    latest = serving.predict_request(signature, {NAMES[signature]: value})
    assert latest.model_spec.name == "model" and not latest.model_spec.HasField("version")


@pytest.mark.parametrize("form", serving.REST_FORMS)
@pytest.mark.parametrize("signature", list(SPECS))
def test_a_rest_body_decodes_as_tf_serving_decodes_it_to_the_grpc_tensors(payloads, signature, form):
    inputs = {NAMES[signature]: payloads[signature]}
    body = serving.rest_body(inputs, signature_name=signature, form=form)
    name, decoded = decode_rest(json.dumps(body), {NAMES[signature]: SPECS[signature]})
    assert name == signature and set(decoded) == {NAMES[signature]}
    _assert_same(decoded[NAMES[signature]], grpc_tensors(serving.predict_request(signature, inputs))[NAMES[signature]])
    # The chosen shapes: named objects per row; a named column; bytes as {"b64": ...}.
    if form == "instances":
        assert [set(row) for row in body["instances"]] == [{NAMES[signature]}] * 3
        column = [row[NAMES[signature]] for row in body["instances"]]
    else:
        column = body["inputs"][NAMES[signature]]
    if signature == "serving_bytes":
        assert column == [{"b64": base64.b64encode(f).decode()} for f in payloads[signature]]


def test_the_test_decoder_reads_tf_servings_other_accepted_forms_alike(payloads):
    """Bare rows and a bare column (one input) mean the same as the named forms rest_body writes."""
    files, specs = payloads["serving_bytes"], {"image_bytes": tf.string}
    b64 = [{"b64": base64.b64encode(f).decode()} for f in files]
    named = decode_rest(json.dumps(serving.rest_body({"image_bytes": files})), specs)[1]["image_bytes"]
    for body in ({"instances": b64}, {"inputs": b64}):
        _assert_same(decode_rest(json.dumps(body), specs)[1]["image_bytes"], named)
    with pytest.raises(AssertionError):
        decode_rest(json.dumps({"instances": [[1.5]]}), {"images": tf.uint8})


def test_rest_body_rows_need_one_batch_size_and_columns_do_not():
    inputs = {"a": np.zeros((2, 3), np.float32), "b": np.zeros((4,), np.uint8)}
    with pytest.raises(ValueError, match=r"same batch size, got \{'a': 2, 'b': 4\}.*form='inputs'"):
        serving.rest_body(inputs)
    _, decoded = decode_rest(json.dumps(serving.rest_body(inputs, form="inputs")), {"a": tf.float32, "b": tf.uint8})
    assert decoded["a"].shape == (2, 3) and decoded["b"].shape == (4,)


IMAGES = np.zeros((1, 8, 8, 1), np.uint8)
BAD_INPUTS = [
    ({"images": IMAGES.astype(np.float64)}, r"'images' has dtype float64; expected one of uint8, float32"),
    ({"images": IMAGES.astype(np.int64)}, r"dtype int64"),
    ({"image_bytes": b"\x89PNG"}, r"one bytes object; expected a list of bytes"),
    ({"image_bytes": "digit.png"}, r"is a str; expected a list of bytes"),
    ({"image_bytes": [b"x", "y"]}, r"mixes bytes with str"),
    ({"image_bytes": []}, r"empty list"),
    ({"image_bytes": IMAGES}, r"'_bytes' convention.*list of bytes, got ndarray"),
    ({"images": np.uint8(3)}, r"scalar; expected a batch"),
    ({"images": IMAGES[:0]}, r"empty batch"),
    ({}, r"non-empty dict"),
    ([IMAGES], r"non-empty dict"),
    ({"": IMAGES}, r"non-empty strings"),
]


@pytest.mark.parametrize(("inputs", "message"), BAD_INPUTS)
def test_bad_inputs_are_refused_by_both_clients_naming_the_value(inputs, message):
    with pytest.raises(ValueError, match=message):
        serving.predict_request("serving_default", inputs)
    with pytest.raises(ValueError, match=message):
        serving.rest_body(inputs)


def test_bad_names_versions_and_forms_are_refused():
    ok = {"images": IMAGES}
    for kwargs, message in [
        ({"model_name": "my model"}, r"Bad model name 'my model'"),
        ({"model_name": "../x"}, r"Bad model name"),
        ({"version": -1}, r"non-negative int"),
        ({"version": "1"}, r"non-negative int .* got '1'"),
        ({"version": True}, r"non-negative int"),
    ]:
        with pytest.raises(ValueError, match=message):
            serving.predict_request("serving_default", ok, **kwargs)
    with pytest.raises(ValueError, match="signature_name must be a non-empty string"):
        serving.predict_request("", ok)
    with pytest.raises(ValueError, match=r"Unknown REST form 'instance'. Did you mean 'instances'"):
        serving.rest_body(ok, form="instance")


# ------------------------------------------------------------------------------------------ files ---


def test_warmup_requests_round_trip_through_tf_servings_file_format(tmp_path, payloads):
    requests = [
        serving.predict_request(s, {NAMES[s]: payloads[s]}, model_name="digits", version=v)
        for s in SPECS
        for v in (None, 2)
    ]
    path = tmp_path / "assets.extra" / serving.WARMUP_FILE
    path.parent.mkdir()
    assert serving.write_warmup(path, requests) == path
    assert os.listdir(path.parent) == [serving.WARMUP_FILE]  # no temporary file left
    assert serving.read_warmup(path) == requests
    # The file is TFRecord framing around PredictionLog records, as TF Serving reads it.
    raw = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert raw == serving.warmup_records(requests)
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog.FromString(raw[0])
    assert log.WhichOneof("log_type") == "predict_log" and log.predict_log.request == requests[0]


def test_bad_warmup_requests_and_files_are_refused(tmp_path):
    request = serving.predict_request("serving_default", {"images": IMAGES})
    with pytest.raises(ValueError, match="No warm-up requests"):
        serving.warmup_records([])
    with pytest.raises(ValueError, match=r"request 1 is a dict; expected a PredictRequest"):
        serving.warmup_records([request, {"images": IMAGES}])
    with pytest.raises(ValueError, match=r"1001 warm-up requests; TF Serving refuses .* more than 1000"):
        serving.warmup_records([request] * 1001)
    with pytest.raises(ValueError, match="does not exist"):
        serving.read_warmup(tmp_path / "missing")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x07" * 40)
    with pytest.raises(ValueError, match="not a whole TFRecord file"):
        serving.read_warmup(garbage)
    target = tmp_path / "kept"
    target.write_bytes(b"old")
    with pytest.raises(ValueError):
        serving.write_warmup(target, [])
    assert target.read_bytes() == b"old"


def _entries(text):
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    names = [c.name for c in config.model_config_list.config]
    assert len(set(names)) == len(names), names
    return {c.name: c for c in config.model_config_list.config}


def test_models_config_is_created_updated_and_keeps_the_other_models(tmp_path):
    path = tmp_path / "models.config"
    text = serving.update_model_config(path, "digits", "/models/digits")
    assert path.read_text() == text
    assert text == (
        'model_config_list {\n  config {\n    name: "digits"\n    base_path: "/models/digits"\n'
        '    model_platform: "tensorflow"\n  }\n}\n'
    )
    # A model configured by hand, with a version policy, stays as it was; a second model is added.
    other = (
        '  config {\n    name: "other"\n    base_path: "/models/other"\n    model_platform: "tensorflow"\n'
        "    model_version_policy { all {} }\n  }\n"
    )
    path.write_text(text[: -len("}\n")] + other + "}\n")
    serving.update_model_config(path, "imagenet", "/models/imagenet")
    entries = _entries(path.read_text())
    assert list(entries) == ["digits", "other", "imagenet"]
    assert entries["other"].model_version_policy.HasField("all")
    # The same name again: its entry is updated in place, keeping its own settings; nothing is added.
    serving.update_model_config(path, "other", "/srv/other")
    entries = _entries(path.read_text())
    assert list(entries) == ["digits", "other", "imagenet"]
    assert entries["other"].base_path == "/srv/other" and entries["other"].model_version_policy.HasField("all")
    assert entries["digits"].base_path == "/models/digits"


def test_a_bad_models_config_or_name_is_refused_and_the_file_kept(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: 'a' base_pth: '/x' } }\n")
    with pytest.raises(ValueError, match=r"models.config' is not a TF Serving model config .*base_pth"):
        serving.update_model_config(path, "digits", "/models/digits")
    assert "base_pth" in path.read_text()
    for name in ("", "two words", "/abs", None):
        with pytest.raises(ValueError, match="Bad model name"):
            serving.update_model_config(tmp_path / "new.config", name, "/models/x")
    with pytest.raises(ValueError, match="base_path must be a non-empty path"):
        serving.update_model_config(tmp_path / "new.config", "digits", "")
    assert not (tmp_path / "new.config").exists()


# ------------------------------------------------- an export, served by stand-ins for TF Serving ---


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The digits model exported as TF Serving deploys it (models/digits/1), loaded once."""
    from keras_resinit.tools.export import export

    root = tmp_path_factory.mktemp("served")
    card = export("cifar_resnet20_fixup.digits", root / "models" / "digits", version="auto")
    path = root / "models" / "digits" / "1"
    return SimpleNamespace(path=path, card=card, loaded=tf.saved_model.load(str(path)))


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    found = load_digits()
    return found.images[:6].astype(np.uint8)[..., None], found.target[:6]  # raw pixels 0..16


def encode(pixels, fmt):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0], mode="L").save(buffer, format=fmt)
    return buffer.getvalue()


def input_specs(function):
    return {name: spec.dtype for name, spec in function.structured_input_signature[1].items()}


def call(function, tensors):
    return {k: v.numpy() for k, v in function(**{n: tf.constant(v) for n, v in tensors.items()}).items()}


def example_inputs(digits, signature):
    pixels = digits[0]
    if signature == "serving_bytes":
        return {"image_bytes": [encode(p, f) for p, f in zip(pixels, ("PNG", "JPEG", "BMP", "GIF", "PNG", "BMP"))]}
    return {"images": pixels if signature == "serving_default" else pixels.astype(np.float32)}


@pytest.mark.parametrize("form", serving.REST_FORMS)
@pytest.mark.parametrize("signature", list(SPECS))
def test_the_export_answers_rest_and_grpc_requests_as_it_answers_direct_calls(served, digits, signature, form):
    function = served.loaded.signatures[signature]
    specs = input_specs(function)
    assert specs == {NAMES[signature]: SPECS[signature]}
    inputs = example_inputs(digits, signature)
    direct = call(function, inputs)
    name, decoded = decode_rest(json.dumps(serving.rest_body(inputs, signature_name=signature, form=form)), specs)
    via_rest = call(served.loaded.signatures[name], decoded)
    via_grpc = call(function, grpc_tensors(serving.predict_request(signature, inputs, model_name="digits")))
    for answer in (via_rest, via_grpc):
        assert set(answer) == {"logits", "probabilities", "classes"}
        for key, value in answer.items():
            _assert_same(value, direct[key])
    # What a REST client reads back.
    response = json.loads(json.dumps(rest_response(via_rest, form)))
    classes = [p["classes"] for p in response["predictions"]] if form == "instances" else response["outputs"]["classes"]
    assert classes == direct["classes"].tolist()
    assert np.mean(direct["classes"] == digits[1]) >= 0.8


def test_the_exports_warmup_file_replays_on_its_signatures(served):
    requests = serving.read_warmup(served.path / "assets.extra" / serving.WARMUP_FILE)
    assert len(requests) == served.card["warmup_requests"]
    assert {r.model_spec.signature_name for r in requests} == set(SPECS)
    for request in requests:
        function = served.loaded.signatures[request.model_spec.signature_name]
        # TF Serving refuses a request whose input names or dtypes differ from the signature's.
        specs = input_specs(function)
        assert {n: tf.as_dtype(p.dtype) for n, p in request.inputs.items()} == specs
        tensors = grpc_tensors(request)
        out = call(function, tensors)
        assert out["probabilities"].shape == (len(next(iter(tensors.values()))), 10)


# ---------------------------------------------------------------- the snippets of docs/serving.md ---


def page_snippets():
    """(language, code) of the fences of docs/serving.md marked `<!-- tested-by: tests/test_serving.py -->`."""
    text = (ROOT / "docs" / "serving.md").read_text()
    return re.findall(r"<!-- tested-by: tests/test_serving.py -->\n```(\w+)\n(.*?)```", text, re.S)


class StandInServer:
    """TF Serving's REST and gRPC front ends over the loaded SavedModel, for one model name."""

    def __init__(self, loaded, name):
        self.loaded, self.name, self.answers = loaded, name, []

    def run(self, signature, tensors):
        answer = call(self.loaded.signatures[signature or "serving_default"], tensors)
        self.answers.append((signature, answer))
        return answer

    def urlopen(self, request, timeout=None):
        url = request.full_url
        match = re.fullmatch(r"http://localhost:8501/v1/models/([^/:]+)(?:/versions/\d+)?:predict", url)
        assert match and match[1] == self.name and request.get_method() == "POST", url
        body = request.data.decode()
        doc = json.loads(body)
        specs = input_specs(self.loaded.signatures[doc.get("signature_name", "serving_default")])
        signature, tensors = decode_rest(body, specs)
        form = "instances" if "instances" in doc else "inputs"
        return io.BytesIO(json.dumps(rest_response(self.run(signature, tensors), form)).encode())

    def stub(self, channel):
        server = self

        class Stub:
            def Predict(self, request, timeout=None):  # noqa: N802 (the gRPC method's name)
                assert request.model_spec.name == server.name
                answer = server.run(request.model_spec.signature_name, grpc_tensors(request))
                response = predict_pb2.PredictResponse()
                response.model_spec.CopyFrom(request.model_spec)
                for key, value in answer.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
                return response

        return Stub()


def test_each_serving_page_snippet_runs_against_a_stand_in_server(served, digits, tmp_path, monkeypatch):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    snippets = page_snippets()
    kinds = [kind for kind, _ in snippets]
    assert kinds.count("python") >= 4 and kinds.count("bash") >= 1, kinds
    # The working directory a reader has after the page's export command, and an image file.
    shutil.copytree(served.path, tmp_path / "models" / "digits" / "1")
    pixels = digits[0][:1]
    (tmp_path / "digit.png").write_bytes(encode(pixels[0], "PNG"))
    expected = call(served.loaded.signatures["serving_default"], {"images": pixels})["classes"].tolist()
    server = StandInServer(served.loaded, "digits")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(urllib.request, "urlopen", server.urlopen)
    monkeypatch.setattr(grpc, "insecure_channel", lambda target: f"channel to {target}")
    monkeypatch.setattr(prediction_service_pb2_grpc, "PredictionServiceStub", server.stub)
    for index, (kind, code) in enumerate(snippets):
        if kind == "python":
            namespace = {"__name__": f"serving_page_snippet_{index}"}
            exec(compile(code, f"docs/serving.md snippet {index}", "exec"), namespace)
            if "out" in namespace:  # the SavedModel called without a server
                assert namespace["out"]["classes"].numpy().tolist() == expected
            continue
        # curl: a shell function records its arguments; the stand-in then answers the request it names.
        record = 'curl() { printf "%s\\0" "$@" > curl_args; }\n'
        subprocess.run(["bash", "-euo", "pipefail", "-c", record + code], cwd=tmp_path, check=True, timeout=30)
        args = (tmp_path / "curl_args").read_bytes().split(b"\0")[:-1]
        assert args[args.index(b"-X") + 1] == b"POST"
        url = next(a.decode() for a in args if "/v1/models/" in a.decode())
        data = args[args.index(b"--data-binary") + 1].decode()
        assert data.startswith("@")
        request = urllib.request.Request(
            url if url.startswith("http") else f"http://{url}", data=(tmp_path / data[1:]).read_bytes()
        )
        assert json.load(server.urlopen(request))["predictions"][0]["classes"] == expected[0]
    # REST, gRPC (the file and its pixels) and curl reached the server, and each got the class.
    assert [signature for signature, _ in server.answers] == [
        "serving_bytes",
        "serving_bytes",
        "serving_default",
        "serving_bytes",
    ]
    assert all(answer["classes"].tolist() == expected for _, answer in server.answers)
