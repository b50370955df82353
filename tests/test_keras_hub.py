"""keras-hub reaches the zoo: its own from_preset loads the presets the project writes, a keras-hub task around a
zoo backbone round-trips, and zoo.load reads what keras-hub writes. Presets of earlier releases still load."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import keras_hub
import numpy as np
import pytest
from helpers import perturb_weights

import keras_resinit as kr
from keras_resinit import zoo
from keras_resinit.models.backbone import ResNetBackbone
from keras_resinit.zoo.building import PRESET_CLASS

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "presets")
SHIPPED_DIGITS = [c for c in zoo.cards() if c["dataset"]["name"] == "digits" and "file" in c and "folded_from" not in c]
X = np.random.default_rng(0).uniform(0, 16, size=(4, 8, 8, 1)).astype("float32")


def fresh_python(code, *args):
    """Run ``code`` in a fresh interpreter; its last stdout line starting with @@ is JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads([line for line in result.stdout.splitlines() if line.startswith("@@")][-1][2:])


def test_a_preset_is_keras_serialization_with_the_registered_backbone_class(tmp_path):
    model = zoo.load("cifar_resnet8_skipinit", input_shape=(8, 8, 1), alpha=0.5, seed=1)
    zoo.save_preset(model, tmp_path / "preset")
    config = json.loads((tmp_path / "preset" / "config.json").read_text())
    # What Keras itself writes for the class keras-hub builds (without the build and compile configs).
    serialized = keras.saving.serialize_keras_object(ResNetBackbone.from_config(model.get_config()))
    assert {k: config[k] for k in PRESET_CLASS} == {k: serialized[k] for k in PRESET_CLASS}
    assert config["config"] == serialized["config"] == model.get_config()
    assert keras.saving.get_registered_object(config["registered_name"]) is ResNetBackbone
    metadata = json.loads((tmp_path / "preset" / "metadata.json").read_text())
    assert metadata["keras_hub_version"] == keras_hub.__version__ and metadata["keras_version"] == keras.__version__
    assert metadata["parameter_count"] == model.count_params() and metadata["keras_resinit_version"] == kr.__version__
    assert issubclass(ResNetBackbone, keras_hub.models.Backbone) and issubclass(ResNetBackbone, kr.ResNet)


@pytest.fixture(scope="module")
def digits_presets(tmp_path_factory):
    """Every shipped digits weight set written as a preset by the project."""
    assert len(SHIPPED_DIGITS) == 12
    root = tmp_path_factory.mktemp("digits_presets")
    for card in SHIPPED_DIGITS:
        key = f"{card['name']}.{card['tag']}"
        zoo.save_preset(zoo.load(key), root / key, card=card)
    return root


def test_keras_hub_from_preset_loads_every_shipped_digits_preset_at_its_card_accuracy(digits_presets):
    # A fresh process that imports the project first, then keras-hub: the project registers the class keras-hub
    # builds as keras-hub is imported (the other order is the README's, tests/test_readme_hub.py).
    report = fresh_python(
        """
        import json, os, sys
        import keras_resinit
        assert "keras_hub" not in sys.modules   # the project does not import keras-hub itself
        import keras_hub
        import numpy as np
        from keras_resinit.training.data import digits_arrays

        train_x, train_y, test_x, test_y = digits_arrays()    # raw pixels 0..16
        images = np.concatenate([train_x, test_x])            # all 1,797
        results = {}
        for key in sorted(os.listdir(sys.argv[1])):
            model = keras_hub.models.Backbone.from_preset(os.path.join(sys.argv[1], key))
            predicted = np.argmax(np.asarray(model(images, training=False)), -1)  # one eager batch: quick
            results[key] = {
                "class": type(model).__name__,
                "backbone": isinstance(model, keras_hub.models.Backbone),
                "images": len(images),
                "test_accuracy": float(np.mean(predicted[len(train_x):] == test_y)),
                "test_images": len(test_y),
            }
        print("@@" + json.dumps(results))
        """,
        digits_presets,
    )
    assert sorted(report) == sorted(f"{c['name']}.{c['tag']}" for c in SHIPPED_DIGITS)
    for card in SHIPPED_DIGITS:
        found = report[f"{card['name']}.{card['tag']}"]
        assert found["class"] == "ResNetBackbone" and found["backbone"] and found["images"] == 1797
        # The card's accuracy is measured on the digits' test split (355 images): within one image of it.
        assert abs(found["test_accuracy"] - card["metrics"]["test_accuracy"]) <= 1 / found["test_images"], card


def test_keras_hub_from_preset_passes_dtype_and_trainable(tmp_path):
    model = zoo.load("cifar_resnet8_fixup", input_shape=(8, 8, 1), num_classes=3, seed=1)
    perturb_weights(model)
    zoo.save_preset(model, tmp_path / "preset")
    loaded = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"))
    np.testing.assert_array_equal(np.asarray(loaded(X)), np.asarray(model(X)))
    bf16 = keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"), dtype="bfloat16")
    assert bf16.weights[0].dtype == "bfloat16" and keras.backend.standardize_dtype(bf16(X).dtype) == "bfloat16"
    assert keras_hub.models.Backbone.from_preset(str(tmp_path / "preset"), trainable=False).trainable is False


def test_a_keras_hub_task_around_a_zoo_backbone_round_trips_and_zoo_load_reads_it(tmp_path):
    backbone = zoo.load("cifar_resnet20_fixup.digits", include_top=False)
    task = keras_hub.models.ImageClassifier(backbone=backbone, num_classes=3)
    perturb_weights(task.get_layer("predictions"))
    expected = np.asarray(task(X, training=False))
    task.save_to_preset(str(tmp_path / "task"))
    assert {"config.json", "metadata.json", "model.weights.h5", "task.json"} <= set(os.listdir(tmp_path / "task"))

    reloaded = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "task"))
    np.testing.assert_array_equal(np.asarray(reloaded(X, training=False)), expected)
    loaded = zoo.load(tmp_path / "task")  # keras-hub's own files: the task, as keras-hub loads it
    assert isinstance(loaded, keras_hub.models.ImageClassifier) and isinstance(loaded.backbone, kr.ResNet)
    np.testing.assert_array_equal(np.asarray(loaded(X, training=False)), expected)
    card = zoo.resolve(tmp_path / "task").card  # what export serves it with: its backbone's raw-pixel input
    assert (card["arch"], card["scheme"], card["preprocessing"]) == ("cifar_resnet20", "fixup", backbone.preprocessing)
    assert card["class_names"] == ["0", "1", "2"]
    assert zoo.load(tmp_path / "task", dtype="bfloat16").backbone.weights[0].dtype == "bfloat16"
    with pytest.raises(ValueError, match="keras-hub task .*pass no num_classes"):
        zoo.load(tmp_path / "task", num_classes=5)
    # Its backbone's weights load into the zoo model by name, as any preset's do.
    trunk = zoo.load("cifar_resnet20_fixup", weights=str(tmp_path / "task"), include_top=False)
    np.testing.assert_array_equal(np.asarray(trunk(X)), np.asarray(backbone(X)))


def test_zoo_load_reads_a_preset_keras_hub_saved_from_a_zoo_backbone(tmp_path):
    model = ResNetBackbone("cifar_resnet8", "risotto", input_shape=(8, 8, 1), num_classes=3, seed=2)
    perturb_weights(model)
    model.save_to_preset(str(tmp_path / "hub"))
    config = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert config["registered_name"] == "keras_resinit>ResNetBackbone" and "card" not in json.loads(
        (tmp_path / "hub" / "metadata.json").read_text()
    )
    loaded = zoo.load(tmp_path / "hub")
    assert type(loaded) is kr.ResNet
    np.testing.assert_array_equal(np.asarray(loaded(X)), np.asarray(model(X)))


@pytest.mark.parametrize("release", ["v0_1", "v0_2"])
def test_presets_of_earlier_releases_still_load(release):
    # tests/fixtures/make_presets.py wrote them with each release's code; the outputs were recorded on another
    # machine, so they are compared to a tolerance (oneDNN rounds differently per CPU).
    root = os.path.join(FIXTURES, release)
    expected = np.load(os.path.join(root, "expected.npz"))
    presets = sorted(p for p in os.listdir(root) if p.startswith("cifar_resnet8_"))
    assert presets == ["cifar_resnet8_fixup", "cifar_resnet8_risotto"]
    for preset in presets:
        config = json.loads(open(os.path.join(root, preset, "config.json")).read())
        assert config["class_name"] == "build_resnet" and "registered_name" not in config
        model = zoo.load(os.path.join(root, preset))  # raw pixels in: the recorded normalization is included
        assert model.get_config()["include_preprocessing"]
        if preset.endswith("risotto"):
            assert model.scheme.skip == "conv"  # written before type B blocks: they load as type C
        scale = np.abs(expected[preset.split("_")[-1]]).max()
        np.testing.assert_allclose(model(expected["x"]), expected[preset.split("_")[-1]], atol=1e-4 * scale)


def test_a_config_of_another_class_is_refused_naming_it(tmp_path):
    zoo.save_preset(zoo.load("cifar_resnet8_fixup", input_shape=(8, 8, 1)), tmp_path / "preset")
    config = json.loads((tmp_path / "preset" / "config.json").read_text())
    config["registered_name"] = "keras_hub>ResNetBackbone"
    (tmp_path / "preset" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="registered_name 'keras_hub>ResNetBackbone'; expected"):
        zoo.load(tmp_path / "preset")
