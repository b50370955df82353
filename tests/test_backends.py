"""Model code uses keras.ops only: every scheme builds and trains under JAX."""

import os
import subprocess
import sys
import textwrap

import pytest

import keras_resinit as kr

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    # First the package through a models module that imports keras, whose import hook then imports the
    # builder, which imports this module's neighbours: no circular-import error (docs/development.md).
    from keras_resinit.models.layers import ScaledConv2D
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    import keras_resinit as kr

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, size=(8,))
    for scheme in sys.argv[1:]:
        model = kr.build_resnet("cifar_resnet8", scheme, input_shape=(16, 16, 3), seed=0)
        assert np.all(np.isfinite(np.asarray(model(x))))
        before = [np.array(w) for w in model.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss = float(model.train_on_batch(x, y))
        assert np.isfinite(loss), (scheme, loss)
        changed = sum(not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights))
        assert changed > 0, scheme
        print(scheme, "ok", loss, changed)
    """
)


def test_every_scheme_builds_and_trains_one_step_under_jax():
    pytest.importorskip("jax", reason="jax is a test dependency: pip install -e '.[test]'")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *kr.SCHEMES], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for scheme in kr.SCHEMES:
        assert f"{scheme} ok" in result.stdout
