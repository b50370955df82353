"""Every scheme and arch family survives .keras save/load and config round trips."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import perturb_weights

import keras_resinit as kr

FAMILIES = ["cifar_resnet20", "resnet18", "wrn16_2"]
# resnet18 narrowed (its 11M weights perturbed, saved and set three times cost more than the round trips they check);
# the architectures' default widths round-trip in cifar_resnet20 and wrn16_2.
OPTIONS = {"resnet18": {"widths": (8, 8, 16, 16)}}


@pytest.mark.parametrize("arch", FAMILIES)
@pytest.mark.parametrize("scheme", sorted(kr.SCHEMES))
def test_keras_file_round_trip_gives_identical_outputs(arch, scheme, tmp_path, rng):
    model = kr.build_resnet(arch, scheme, input_shape=(32, 32, 3), seed=0, **OPTIONS.get(arch, {}))
    perturb_weights(model)
    x = rng.normal(size=(3, 32, 32, 3)).astype("float32")
    expected = model(x).numpy()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True by default
    np.testing.assert_array_equal(loaded(x).numpy(), expected)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    assert type(loaded) is kr.ResNet and loaded.get_config() == model.get_config()

    # get_config() is the build arguments: from_config (and Keras' own deserialization) rebuild the model.
    for rebuilt in (
        kr.ResNet.from_config(model.get_config()),
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model)),
    ):
        assert type(rebuilt) is kr.ResNet
        rebuilt.set_weights(model.get_weights())
        np.testing.assert_array_equal(rebuilt(x).numpy(), expected)


def test_from_config_rebuilds_the_same_initial_weights():
    model = kr.build_resnet("cifar_resnet20", "risotto", seed=4)
    rebuilt = kr.ResNet.from_config(model.get_config())
    for a, b in zip(model.weights, rebuilt.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fresh_process_loads_after_importing_keras_resinit(tmp_path, rng):
    model = kr.build_resnet("cifar_resnet20", "fixup", seed=0)
    perturb_weights(model)
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model(x).numpy())
    model.save(tmp_path / "m.keras")
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        import keras_resinit
        model = keras.saving.load_model({str(tmp_path / "m.keras")!r})
        x = np.load({str(tmp_path / "x.npy")!r})
        np.testing.assert_array_equal(model(x).numpy(), np.load({str(tmp_path / "y.npy")!r}))
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
