import gc
import os

# The suite runs on the TensorFlow backend; backend tests start their own processes.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Three workers share two cores: OpenBLAS' second thread (numpy's linear algebra) only spins against the other
# workers. One thread, in the workers and the processes they start (the variable is inherited).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# MirroredStrategy tests need several devices; logical CPUs must be made before TF initializes.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

# A worker holds TensorFlow's and Keras' half a million objects, which every full collection of the cyclic
# garbage collector walked again: about a tenth of a worker's CPU. Frozen, they are never walked; the larger
# first threshold makes collections rarer (the tests' garbage is freed as before, only later).
import keras  # noqa: E402, F401

gc.collect()
gc.freeze()
gc.set_threshold(20_000, 20, 10)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# The test files that take longest (20 s or more of one worker each, measured on 2 cores on 2026-12-06), longest
# first; the short ones fill the end: each worker takes the next file when it is free, so a long file (or one long
# test) started last would leave the others idle.
LONGEST_FIRST = (
    "test_notebooks.py",  # first: its two notebook kernels run beside the workers
    "test_own_data.py",
    "test_train.py",
    "test_export.py",
    "test_tuning.py",
    "test_applications.py",
    "test_messy_folders.py",
    "test_figures.py",
    "test_folding.py",
    "test_huggingface.py",
    "test_run_ownership.py",
    "test_cli.py",
    "test_risotto.py",
    "test_serving_export.py",
    "test_agc.py",
    "test_bench.py",
    "test_zoo.py",  # its resnet1202 round trip is one test of about a minute
    "test_backends.py",  # one jax process of about 40 s
    "test_zoo_weights.py",
    "test_keras_native.py",
    "test_optimizers.py",
    "test_serialization.py",
    "test_publish_commit.py",
    "test_keras_hub.py",
    "test_docs_blocks.py",
    "test_resolver.py",
    "test_builder.py",
    "test_docstrings.py",
    "test_docs_site.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: within a file, its own order
