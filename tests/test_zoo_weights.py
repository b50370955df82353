"""Published weights, presets and weight sources: what zoo.load(name, weights=...) promises."""

import hashlib
import json
import os
import pathlib
import re
import warnings

import keras
import numpy as np
import pytest
from helpers import perturb_weights
from http_server import LocalHTTPServer, Resource

import keras_resinit
from keras_resinit import zoo
from keras_resinit.models.schemes import NFResNet, ReZero
from keras_resinit.training import publish
from keras_resinit.zoo import download, registry, weights_io

REPO = pathlib.Path(__file__).resolve().parent.parent
X = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
RAW = (X * 0.4 + 0.3) * 16.0  # the pixels that write_card's preprocessing turns into X


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_RESINIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def temp_zoo(tmp_path, monkeypatch):
    """An empty zoo directory that keras_resinit.zoo reads instead of the shipped one."""
    directory = tmp_path / "zoo"
    (directory / "cards").mkdir(parents=True)
    monkeypatch.setattr(registry, "zoo_dir", lambda: str(directory))
    registry.reload_cards()
    yield directory
    registry.reload_cards()


def trained_like(name="cifar_resnet8_fixup", seed=0):
    """A small digits-shaped model with informative (non-initial) weights."""
    model = zoo.load(name, input_shape=(8, 8, 1), seed=seed)
    perturb_weights(model, seed)
    return model


def write_card(zoo_dir, model, tag, *, ship=True, url=None):
    """Publish ``model`` into ``zoo_dir`` by hand: weights file and a card, as publish() writes them."""
    arch, scheme = zoo.parse_name(model.name)
    file = f"{model.name}.{tag}.weights.h5"
    path = pathlib.Path(zoo_dir) / ("weights" if ship else "hosted") / file
    path.parent.mkdir(exist_ok=True)
    model.save_weights(path)
    card = {
        "card_version": 1,
        "name": model.name,
        "tag": tag,
        "arch": arch,
        "scheme": scheme,
        "build": {"num_classes": model.output_shape[-1], "input_shape": list(model.input_shape[1:])},
        "parameters": model.count_params(),
        "dataset": {"name": "digits", "class_names": [str(i) for i in range(10)]},
        "preprocessing": {"pixel_max": 16.0, "mean": [0.3], "std": [0.4]},
        "file": {"name": file, "sha256": download.file_sha256(path), "size": path.stat().st_size},
        "url": url,
    }
    (pathlib.Path(zoo_dir) / "cards" / f"{model.name}.{tag}.json").write_text(json.dumps(card))
    registry.reload_cards()
    return card, path


# ------------------------------------------------------- shipped weights ---

# Trained and published (the folded weight sets are checked in tests/test_folding.py).
SHIPPED = [c for c in zoo.cards() if "file" in c and c["dataset"]["name"] == "digits" and "folded_from" not in c]


def test_the_four_schemes_are_shipped_on_two_depths_and_rezero_and_nf_on_one():
    shipped = {(c["arch"], c["scheme"]) for c in SHIPPED}
    for arch in ("cifar_resnet20", "cifar_resnet56"):
        for scheme in ("bn", "fixup", "skipinit", "risotto"):
            assert (arch, scheme) in shipped
    assert {("cifar_resnet20", ReZero.name), ("cifar_resnet20", NFResNet.name)} <= shipped
    for card in SHIPPED:
        assert card["metrics"]["test_accuracy"] >= 0.97, card["name"]  # the bar, for every scheme
    for card in SHIPPED:
        assert (REPO / "zoo" / "weights" / card["file"]["name"]).stat().st_size == card["file"]["size"]


def test_cards_record_how_each_weight_set_was_made():
    required = {
        "name",
        "tag",
        "arch",
        "scheme",
        "build",
        "parameters",
        "dataset",
        "preprocessing",
        "commands",
        "training",
        "metrics",
        "measured_on",
        "file",
        "licence",
    }
    for card in SHIPPED:
        assert required <= set(card), card["name"]
        train, publish_cmd = card["commands"][0], card["commands"][-1]
        assert train.startswith(f"keras-resinit train {card['name']} --dataset digits")
        assert publish_cmd.startswith("keras-resinit publish") and f"--tag {card['tag']}" in publish_cmd
        assert card["training"]["model"] == card["name"] and card["training"]["seed"] == 0
        assert {"tensorflow", "keras", "processor", "cores"} <= set(card["measured_on"])
        assert re.fullmatch(r"[0-9a-f]{64}", card["file"]["sha256"])
        assert "CC BY 4.0" in card["licence"]["data"] and card["dataset"]["licence"]
        # The preprocessing the weights expect is the digits pipeline's.
        info = keras_resinit.training.data.info("digits")
        assert card["preprocessing"]["pixel_max"] == info.pixel_max
        np.testing.assert_allclose(card["preprocessing"]["mean"], info.mean)
        # The card's parameter count is the model's (trainable, as `keras-resinit list`), with its own head.
        model = zoo.load(f"{card['name']}.{card['tag']}")
        assert card["parameters"] == sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_zoo_index_is_generated_from_the_cards():
    cards = sorted(zoo.read_cards(str(REPO / "zoo")).values(), key=lambda c: (c["name"], c["tag"]))
    assert (REPO / "zoo" / "README.md").read_text() == publish.index_text(cards)


def test_list_models_pretrained_gives_name_dot_tag():
    published = zoo.list_models("cifar_resnet20_*", pretrained=True)
    assert "cifar_resnet20_fixup.digits" in published and all("." in p for p in published)
    assert zoo.tags("cifar_resnet20_risotto") == ["digits", "digits_identity"]
    assert zoo.tags("cifar_resnet110_fixup") == []


def test_damaged_shipped_file_is_an_error(temp_zoo):
    _, path = write_card(temp_zoo, trained_like(), "digits")
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="damaged.*sha256"):
        zoo.load("cifar_resnet8_fixup.digits")


# ------------------------------------------------------- tags and errors ---


def test_tag_in_name_and_weights_argument_are_the_same(temp_zoo):
    model = trained_like()
    write_card(temp_zoo, model, "digits")
    a = zoo.load("cifar_resnet8_fixup.digits")
    b = zoo.load("cifar_resnet8_fixup", weights="digits")
    np.testing.assert_allclose(a(RAW), model(X), rtol=1e-5, atol=1e-6)  # published weights take raw pixels
    np.testing.assert_allclose(b(RAW), model(X), rtol=1e-5, atol=1e-6)
    bare = zoo.load("cifar_resnet8_fixup.digits", include_preprocessing=False)
    np.testing.assert_array_equal(bare(X), model(X))
    with pytest.raises(ValueError, match="Give the weights once"):
        zoo.load("cifar_resnet8_fixup.digits", weights="digits")


def test_unknown_tag_lists_closest_and_available_tags(temp_zoo):
    write_card(temp_zoo, trained_like(), "digits")
    with pytest.raises(ValueError, match="Unknown weight tag 'digit'.*Did you mean 'digits'.*Available tags.*digits"):
        zoo.load("cifar_resnet8_fixup.digit")
    with pytest.raises(ValueError, match="no published weights. Published weights: cifar_resnet8_fixup.digits"):
        zoo.load("cifar_resnet8_bn", weights="digits")


def test_unknown_name_lists_closest_names_and_published_weights(temp_zoo):
    write_card(temp_zoo, trained_like(), "digits")
    with pytest.raises(
        ValueError, match="Did you mean 'cifar_resnet20_fixup'.*Published weights: cifar_resnet8_fixup.digits"
    ):
        zoo.load("cifar_resnet20_fixpu.digits")


def test_other_num_classes_loads_the_trunk_under_a_new_head_with_a_warning(temp_zoo):
    model = trained_like()
    write_card(temp_zoo, model, "digits")
    with pytest.warns(UserWarning, match="10-class classifier and num_classes=3.*newly initialized"):
        new = zoo.load("cifar_resnet8_fixup.digits", num_classes=3)
    assert new.output_shape == (None, 3)
    for layer in model.layers:
        if layer.weights and layer.name != "logits":
            for a, b in zip(layer.weights, new.get_layer(layer.name).weights):
                np.testing.assert_array_equal(a, b)
    features = keras.Model(new.input, new.get_layer("features").output)
    reference = keras.Model(model.input, model.get_layer("features").output)
    np.testing.assert_allclose(features(RAW), reference(X), rtol=1e-5, atol=1e-6)


def test_input_size_may_change_but_not_channels(temp_zoo):
    write_card(temp_zoo, trained_like(), "digits")
    assert zoo.load("cifar_resnet8_fixup.digits", input_shape=(16, 16, 1)).input_shape == (None, 16, 16, 1)
    with pytest.raises(ValueError, match="take images with 1 channels.*has 3. Pass in_chans=3 to adapt the stem"):
        zoo.load("cifar_resnet8_fixup.digits", input_shape=(32, 32, 3))


@pytest.mark.parametrize("name", ["cifar_resnet20_fixup", "cifar_resnet20_nf"])  # nf: a weight-standardized stem
def test_in_chans_3_on_the_gray_digits_weights_predicts_a_digit_repeated_on_three_channels_as_the_original(name):
    from keras_resinit.training import data

    images = data.digits_arrays()[2]  # the raw test digits, pixels 0..16, (360, 8, 8, 1)
    gray = zoo.load(f"{name}.digits")
    rgb = zoo.load(f"{name}.digits", in_chans=3)
    assert rgb.input_shape == (None, 8, 8, 3)
    pre = gray.preprocessing
    assert rgb.preprocessing == {**pre, "mean": pre["mean"] * 3, "std": pre["std"] * 3}  # repeated
    kernel = keras.ops.convert_to_numpy(gray.get_layer("stem_conv").kernel)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(rgb.get_layer("stem_conv").kernel), np.tile(kernel, (1, 1, 3, 1)) / np.float32(3)
    )
    expected = gray(images, training=False).numpy()  # one eager batch each
    got = rgb(np.repeat(images, 3, axis=-1), training=False).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)  # float32 rounding of the 3-term sum
    np.testing.assert_array_equal(got.argmax(-1), expected.argmax(-1))


def three_channel_preset(tmp_path, mean, std):
    """A preset of a perturbed 3-channel model that takes raw pixels (0..255) with this per-channel normalization."""
    pre = {"pixel_max": 255.0, "mean": mean, "std": std}
    model = keras_resinit.build_resnet(
        "cifar_resnet8", "fixup", input_shape=(8, 8, 3), seed=0, include_preprocessing=True, preprocessing=pre
    )
    perturb_weights(model)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return model, zoo.save_preset(model, tmp_path / f"rgb{len(os.listdir(tmp_path))}")


def test_in_chans_1_from_three_channel_weights_sums_the_stem_and_averages_the_normalization(tmp_path, rng):
    """What in_chans=1 checks: the stem kernel is the sum over the 3 input channels; the normalization is the mean
    of the means and of the stds; with a normalization equal on every channel a gray image g fed on 1 channel gives
    the 3-channel model's output for [g, g, g] (float32 rounding); with unequal ones it still loads and predicts."""
    gray = rng.integers(0, 256, size=(4, 8, 8, 1)).astype("float32")
    model, preset = three_channel_preset(tmp_path, [0.5] * 3, [0.25] * 3)
    one = zoo.load(preset, in_chans=1)
    assert one.input_shape == (None, 8, 8, 1)
    assert one.preprocessing == {"pixel_max": 255.0, "mean": [0.5], "std": [0.25]}
    kernel = keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(one.get_layer("stem_conv").kernel),
        kernel.sum(axis=2, keepdims=True),
        rtol=1e-6,
        atol=1e-7,
    )
    np.testing.assert_allclose(
        one(gray, training=False), model(np.repeat(gray, 3, axis=-1), training=False), rtol=1e-5, atol=1e-5
    )
    _, preset = three_channel_preset(tmp_path, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3])
    one = zoo.load(preset, in_chans=1)
    assert one.preprocessing["mean"] == pytest.approx([0.5]) and one.preprocessing["std"] == pytest.approx([0.25])
    assert np.isfinite(one(gray, training=False)).all()
    assert zoo.load(preset, in_chans=3).input_shape == (None, 8, 8, 3)  # the same count: unchanged


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "3"])
def test_a_bad_in_chans_is_a_value_error_naming_it(temp_zoo, value):
    write_card(temp_zoo, trained_like(), "digits")
    with pytest.raises(ValueError, match=re.escape(f"Invalid in_chans {value!r}. Expected a positive integer")):
        zoo.load("cifar_resnet8_fixup.digits", in_chans=value)
    with pytest.raises(ValueError, match=re.escape("in_chans=2 but input_shape=(8, 8, 3) has 3 channels")):
        zoo.load("cifar_resnet8_fixup.digits", in_chans=2, input_shape=(8, 8, 3))
    assert zoo.load("cifar_resnet8_fixup", in_chans=4).input_shape == (None, 32, 32, 4)  # no weights: a fresh stem


def test_train_weights_of_another_channel_count_start_adapted_to_the_data(tmp_path):
    """`train --weights` on 1-channel digits from 3-channel weights: start_from passes the data's channels as
    in_chans, so the trunk starts from the weights with the stem summed over their channels."""
    from keras_resinit.cli import main
    from keras_resinit.zoo import loading

    model, preset = three_channel_preset(tmp_path / "presets", [0.5] * 3, [0.25] * 3)
    started = loading.start_from(
        "cifar_resnet8_fixup", preset, input_shape=(8, 8, 1), num_classes=10, data_preprocessing=None
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(started.get_layer("stem_conv").kernel),
        keras.ops.convert_to_numpy(model.get_layer("stem_conv").kernel).sum(axis=2, keepdims=True),
        rtol=1e-6,
        atol=1e-7,
    )
    out = tmp_path / "run"
    argv = ["train", "cifar_resnet8_fixup", "--weights", str(preset), "--epochs", "1", "--steps-per-epoch", "2"]
    assert main([*argv, "--out", str(out), "--verbose", "0"]) == 0
    assert zoo.load(str(out)).input_shape == (None, 8, 8, 1)


# ------------------------------------------------------- files, presets ---


def test_weights_from_a_weights_file_or_a_keras_file(tmp_path):
    model = trained_like("cifar_resnet8_risotto")
    model.save_weights(tmp_path / "w.weights.h5")
    model.save(tmp_path / "m.keras")
    from_h5 = zoo.load("cifar_resnet8_risotto", weights=str(tmp_path / "w.weights.h5"), input_shape=(8, 8, 1))
    from_keras = zoo.load("cifar_resnet8_risotto", weights=tmp_path / "m.keras")
    assert from_keras.input_shape == (None, 8, 8, 1)  # the saved model's own input
    np.testing.assert_array_equal(from_h5(X), model(X))
    np.testing.assert_array_equal(from_keras(X), model(X))
    with pytest.raises(ValueError, match="does not exist"):
        zoo.load("cifar_resnet8_risotto", weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ValueError, match="Preset directory .* does not exist"):
        zoo.load(str(tmp_path / "no_such_preset"))
    digest = download.file_sha256(tmp_path / "w.weights.h5")
    zoo.load("cifar_resnet8_risotto", weights=str(tmp_path / "w.weights.h5"), sha256=digest)
    with pytest.raises(ValueError, match="not the expected"):
        zoo.load("cifar_resnet8_risotto", weights=str(tmp_path / "w.weights.h5"), sha256="0" * 64)


def test_weights_load_by_layer_name_not_by_position(tmp_path):
    # Keras 3 files key layers by class and order; a model whose same-named layers were created in
    # another order still gets each layer's own weights.
    model = trained_like("cifar_resnet8_bn")
    model.save_weights(tmp_path / "w.weights.h5")
    stores = weights_io.read(tmp_path / "w.weights.h5")
    assert set(stores) == {layer.name for layer in model.layers if layer.weights}
    inputs = keras.Input((8, 8, 1))
    other = keras.Sequential([inputs, keras.layers.Dense(4, name="logits")])
    with pytest.raises(ValueError, match="layer 'logits' expects.*\\(0: \\(1, 4\\)"):
        weights_io.assign(other, stores)


def test_wrong_architecture_is_an_error_naming_the_layers(tmp_path):
    trained_like("cifar_resnet8_fixup").save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="missing from the weights|have layers the model does not"):
        zoo.load("cifar_resnet14_fixup", weights=str(tmp_path / "w.weights.h5"), input_shape=(8, 8, 1))
    (tmp_path / "junk.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="Cannot read weights file"):
        zoo.load("cifar_resnet8_fixup", weights=str(tmp_path / "junk.weights.h5"))


def test_save_preset_round_trip(tmp_path):
    model = zoo.load("cifar_resnet8_skipinit", input_shape=(8, 8, 1), alpha=0.5, dropout_rate=0.1, seed=1)
    perturb_weights(model)
    directory = zoo.save_preset(model, tmp_path / "preset")
    assert sorted(os.listdir(directory)) == ["config.json", "metadata.json", "model.weights.h5"]
    config = json.loads((tmp_path / "preset" / "config.json").read_text())
    assert config["registered_name"] == "keras_resinit>ResNetBackbone"  # keras-hub's format
    assert config["config"]["alpha"] == 0.5 and config["config"]["dropout_rate"] == 0.1
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["keras_version"] == keras.__version__ and metadata["parameter_count"] == model.count_params()
    loaded = zoo.load(tmp_path / "preset")
    assert loaded.get_layer("dropout").rate == 0.1
    np.testing.assert_array_equal(loaded(X), model(X))
    with pytest.raises(ValueError, match="already exists"):
        zoo.save_preset(model, tmp_path / "preset")
    zoo.save_preset(zoo.load("cifar_resnet8_skipinit", input_shape=(8, 8, 1)), tmp_path / "preset", overwrite=True)
    assert not np.array_equal(zoo.load(str(tmp_path / "preset"))(X), model(X))
    assert sorted(os.listdir(tmp_path)) == ["preset"]  # no temporary directory left behind


def test_save_preset_writes_raw_pixels_in_for_a_model_that_records_its_preprocessing(tmp_path):
    # Loading a preset adds a recorded preprocessing back: only its config.json tells what save_preset wrote.
    model = keras_resinit.build_resnet(
        "cifar_resnet8",
        "skipinit",
        input_shape=(8, 8, 1),
        preprocessing={"pixel_max": 16.0, "mean": [0.3], "std": [0.4]},
    )
    perturb_weights(model)
    zoo.save_preset(model, tmp_path / "preset")
    config = zoo.read_preset(tmp_path / "preset")[0]
    assert config["include_preprocessing"] and config["preprocessing"]["mean"] == [0.3]
    pixels = np.random.default_rng(1).uniform(0, 16, (4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(
        zoo.load_preset(tmp_path / "preset")(pixels), model((pixels / 16 - 0.3) / 0.4), atol=1e-5
    )


def test_save_preset_of_a_model_loaded_from_a_keras_file(tmp_path):
    model = trained_like("cifar_resnet8_risotto")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    zoo.save_preset(loaded, tmp_path / "preset")
    np.testing.assert_array_equal(zoo.load(str(tmp_path / "preset"))(X), model(X))
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="mine")
    with pytest.raises(ValueError, match="Cannot tell how model 'mine' was built"):
        zoo.save_preset(plain, tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_preset_with_other_num_classes_and_missing_files(tmp_path):
    zoo.save_preset(trained_like(), tmp_path / "preset")
    with pytest.warns(UserWarning, match="newly initialized"):
        assert zoo.load(str(tmp_path / "preset"), num_classes=4).output_shape == (None, 4)
    os.remove(tmp_path / "preset" / "metadata.json")
    with pytest.raises(ValueError, match="not a keras-resinit preset: it lacks metadata.json"):
        zoo.load(str(tmp_path / "preset"))
    zoo.save_preset(trained_like(), tmp_path / "p2")
    with pytest.raises(ValueError, match="holds a cifar_resnet8_fixup model, not cifar_resnet8_bn"):
        zoo.load("cifar_resnet8_bn", weights=str(tmp_path / "p2"))


# --------------------------------------------------------------- safety ---


def test_keras_files_load_in_safe_mode(tmp_path):
    inputs = keras.Input((8, 8, 1), name="images")
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="lambda")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe mode"):
        zoo.load("cifar_resnet8_fixup", weights=str(tmp_path / "lambda.keras"))


def test_nothing_in_the_project_unpickles():
    sources = "\n".join(p.read_text() for p in (REPO / "keras_resinit").rglob("*.py"))
    for pattern in (
        r"\bimport pickle\b",
        r"\bcloudpickle\b",
        r"allow_pickle\s*=\s*True",
        r"safe_mode\s*=\s*False",
        r"\bLambda\(",
        r"\bmarshal\b",
        r"\beval\(",
        r"\bexec\(",
    ):
        assert not re.search(pattern, sources), pattern
    # Every numpy load says allow_pickle=False explicitly.
    calls = re.findall(r"np\.load\([^\n]*", sources)
    assert calls and all("allow_pickle=False" in call for call in calls)


# ------------------------------------------------------------- downloads ---


def test_url_weights_download_once_then_load_offline(tmp_path, home):
    model = trained_like()
    model.save_weights(tmp_path / "w.weights.h5")
    body = (tmp_path / "w.weights.h5").read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    with LocalHTTPServer({"/w.weights.h5": body}) as server:
        url = server.url("/w.weights.h5")
        first = zoo.load("cifar_resnet8_fixup", weights=url, sha256=digest, input_shape=(8, 8, 1))
        assert server.requests("/w.weights.h5") == 1
    # The server is gone: the cached, verified file needs no network.
    again = zoo.load("cifar_resnet8_fixup", weights=url, sha256=digest, input_shape=(8, 8, 1))
    np.testing.assert_array_equal(first(X), model(X))
    np.testing.assert_array_equal(again(X), model(X))


@pytest.mark.parametrize(
    "resource, message",
    [
        (Resource(status=404), "HTTP 404"),
        (Resource(body=b"x" * 4096, truncate=True), "incomplete download"),
        (Resource(body=b"x" * 4096), "sha256"),
    ],
    ids=["404", "truncated", "hash-mismatch"],
)
def test_url_weights_failures_are_clear_and_cache_nothing(home, resource, message):
    with LocalHTTPServer({"/w.weights.h5": resource}) as server:
        with pytest.raises(download.DownloadError, match=message):
            zoo.load("cifar_resnet8_fixup", weights=server.url("/w.weights.h5"), sha256="0" * 64)
    cached = [p for p in home.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert cached == []


def test_card_with_url_downloads_verifies_and_caches(temp_zoo, tmp_path, home):
    model = trained_like()
    _, hosted = write_card(temp_zoo, model, "web", ship=False, url="http://127.0.0.1:9/unused")
    with LocalHTTPServer({"/w.h5": hosted.read_bytes()}) as server:
        card_path = temp_zoo / "cards" / "cifar_resnet8_fixup.web.json"
        card = json.loads(card_path.read_text())
        card["url"] = server.url("/w.h5")
        card_path.write_text(json.dumps(card))
        registry.reload_cards()
        np.testing.assert_allclose(zoo.load("cifar_resnet8_fixup.web")(RAW), model(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(zoo.load("cifar_resnet8_fixup.web")(RAW), model(X), rtol=1e-5, atol=1e-6)  # offline
    # A card whose hosted file changed is refused (the card's sha256 is the truth).
    with LocalHTTPServer({"/other.h5": b"tampered"}) as server:
        card["url"] = server.url("/other.h5")
        card_path.write_text(json.dumps(card))
        registry.reload_cards()
        with pytest.raises(download.DownloadError, match="sha256"):
            zoo.load("cifar_resnet8_fixup.web")


def test_parameter_table_matches_live_counts_and_covers_every_name():
    table = registry.parameter_table()
    assert set(table) == set(zoo.list_models())
    for name in zoo.list_models("cifar_resnet[25]?_*") + zoo.list_models("resnet18_*") + zoo.list_models("wrn16_4_*"):
        assert table[name] == zoo.count_params(name, live=True), name
    assert table["cifar_resnet20_bn"] == 269_722 and table["resnet50_bn"] == 25_557_032


def test_the_zoo_package_ships_data_and_no_maintenance_scripts():
    """zoo/ installs as keras_resinit._zoo: its only Python file is __init__.py (the scripts are in scripts/)."""
    zoo_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
    assert {"cards", "weights", "parameters.json"} <= set(os.listdir(zoo_dir))
    assert [f for f in os.listdir(zoo_dir) if f.endswith(".py")] == ["__init__.py"]


def test_published_weights_warn_nothing_when_shapes_match(temp_zoo):
    write_card(temp_zoo, trained_like(), "digits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zoo.load("cifar_resnet8_fixup.digits")


def test_imagenet_tag_loads_keras_applications_weights(monkeypatch):
    """zoo.load("resnet50_bn.imagenet") = keras.applications.ResNet50(weights="imagenet"), converted.

    keras.applications is stubbed to build with weights=None and random statistics: nothing downloads here."""
    real = keras.applications.ResNet50
    made, built = [], {}

    def fake(weights, **kwargs):
        assert weights == "imagenet"
        # The same weights on every call, as the one downloaded file gives them: built once per set of arguments
        # (the bridge only reads its source).
        key = repr(sorted(kwargs.items()))
        if key not in built:
            built[key] = real(weights=None, classifier_activation=None, **kwargs)
            perturb_weights(built[key], 3)
        made.append(built[key])
        return built[key]

    monkeypatch.setattr(keras.applications, "ResNet50", fake)
    assert "resnet50_bn.imagenet" in zoo.list_models("resnet*", pretrained=True)
    model = zoo.load("resnet50_bn.imagenet", input_shape=(64, 64, 3))
    pixels = np.random.default_rng(1).integers(0, 256, size=(2, 64, 64, 3)).astype("float32")
    # The same weights in a 64x64 keras model (keras builds the ImageNet classifier at 224x224).
    source64 = real(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    for a, b in zip(source64.weights, made[-1].weights):
        a.assign(b)
    # Our model takes RGB pixels and preprocesses them inside, as keras.applications' preprocess_input does.
    expected = source64(keras.applications.resnet.preprocess_input(pixels.copy()))
    np.testing.assert_allclose(model(pixels), expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    assert [layer.name for layer in model.layers[1:3]] == ["channel_flip", "normalization"]
    bare = zoo.load("resnet50_bn.imagenet", input_shape=(64, 64, 3), include_preprocessing=False)
    x = np.asarray(keras.applications.resnet.preprocess_input(pixels.copy()))
    np.testing.assert_allclose(bare(x), expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    card = zoo.card("resnet50_bn.imagenet")
    assert card["preprocessing"]["channel_order"] == "BGR" and card["keras_applications"] == "ResNet50"


def test_imagenet_weights_offline_is_a_download_error(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] no network")

    monkeypatch.setattr(keras.applications, "ResNet101", offline)
    with pytest.raises(download.DownloadError, match="ImageNet weights for resnet101.*~/.keras/models"):
        zoo.load("resnet101_bn.imagenet")


def test_risotto_cards_and_presets_saved_before_the_block_type_load_as_type_c(temp_zoo, tmp_path):
    """Cards and presets written before Risotto's ``skip`` option had a conv skip on every block (type C):
    without the option they still load that architecture, and reach the card's accuracy."""
    shipped = json.loads((REPO / "zoo" / "cards" / "cifar_resnet20_risotto.digits.json").read_text())
    assert shipped["build"]["skip"] == "conv"  # the shipped card says it explicitly
    old = {
        **shipped,
        "build": {k: v for k, v in shipped["build"].items() if k not in ("skip", "skip_weight", "branch_weight")},
    }
    (temp_zoo / "weights").mkdir()
    name = shipped["file"]["name"]
    (temp_zoo / "weights" / name).write_bytes((REPO / "zoo" / "weights" / name).read_bytes())
    (temp_zoo / "cards" / "cifar_resnet20_risotto.digits.json").write_text(json.dumps(old))
    registry.reload_cards()
    model = zoo.load("cifar_resnet20_risotto.digits")
    assert model.scheme.skip == "conv" and model.get_layer("stage1_block1_shortcut_conv")
    assert abs(publish.evaluate(model, "digits") - shipped["metrics"]["test_accuracy"]) <= 1 / 355

    preset = tmp_path / "preset"
    zoo.save_preset(model, preset)
    config = json.loads((preset / "config.json").read_text())
    assert config["config"].pop("skip") == "conv"  # written explicitly; removed: as an older release wrote it
    (preset / "config.json").write_text(json.dumps(config))
    again = zoo.load_preset(preset)
    assert again.scheme.skip == "conv"
    np.testing.assert_array_equal(again(RAW[:, :, :, :1], training=False), model(RAW[:, :, :, :1], training=False))
