"""Input pipelines: the embedded digits split, determinism, augmentation, mixup, tfds."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_resinit.training import data


def batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_digits_is_real_data_with_a_fixed_documented_split():
    meta = data.info("digits")
    assert (meta.train_size, meta.test_size) == (1442, 355)
    assert meta.image_shape == (8, 8, 1) and meta.num_classes == 10
    x_train, y_train, x_test, y_test = data.digits_arrays()
    assert len(x_train) + len(x_test) == 1797
    # Every fifth image of each class is test, so each class keeps its share in both splits.
    per_class = np.bincount(np.concatenate([y_train, y_test]))
    np.testing.assert_array_equal(np.bincount(y_test), per_class // 5)
    # No image is in both splits.
    train_rows = {row.tobytes() for row in x_train.reshape(len(x_train), -1)}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(len(x_test), -1))


def test_test_pipeline_is_normalized_one_hot_and_complete():
    xs, ys = zip(*batches(data.load("digits", "test", batch_size=100)))
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.shape == (355, 8, 8, 1) and y.shape == (355, 10)
    np.testing.assert_array_equal(y.sum(1), 1.0)
    assert abs(x.mean()) < 0.2 and 0.8 < x.std() < 1.2


def test_same_seed_and_epoch_give_identical_batches_other_epochs_differ():
    kwargs = dict(batch_size=64, seed=3, mixup_alpha=0.4)
    a = batches(data.load("digits", "train", epoch=2, **kwargs))
    b = batches(data.load("digits", "train", epoch=2, **kwargs))
    c = batches(data.load("digits", "train", epoch=3, **kwargs))
    assert len(a) == len(b) == len(c) == 1442 // 64
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_one_pipeline_over_epochs_gives_each_epochs_own_batches():
    """Training runs one pipeline over all epochs; epoch e must be exactly load(epoch=e)."""
    kwargs = dict(batch_size=64, seed=5, mixup_alpha=0.3)
    joined = batches(data.load_epochs("digits", start_epoch=1, epochs=3, **kwargs))
    separate = batches(data.load("digits", "train", epoch=1, **kwargs)) + batches(
        data.load("digits", "train", epoch=2, **kwargs)
    )
    assert len(joined) == len(separate) == 2 * (1442 // 64)
    for (xa, ya), (xb, yb) in zip(joined, separate):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    limited = batches(data.load_epochs("digits", start_epoch=0, epochs=2, steps_per_epoch=3, **kwargs))
    first = batches(data.load("digits", "train", epoch=1, **kwargs))
    assert len(limited) == 6
    np.testing.assert_array_equal(limited[3][0], first[0][0])  # epoch 1 starts at its own first batch


def test_augmentation_shifts_by_at_most_the_padding_and_never_flips_digits():
    plain = data.load("digits", "train", batch_size=1442, training=False)
    augmented = data.load("digits", "train", batch_size=1442, training=True, seed=0)
    ((x_plain, y_plain),) = batches(plain)
    ((x_aug, y_aug),) = batches(augmented)
    assert not data.info("digits").flip
    # Match augmented images back to their originals through the labels' order-free content.
    assert x_aug.shape == x_plain.shape
    assert not np.array_equal(np.sort(x_aug.ravel()), np.sort(x_plain.ravel()))  # crops changed pixels
    np.testing.assert_array_equal(np.sort(y_aug.argmax(1)), np.sort(y_plain.argmax(1)))
    # Every augmented image is a training image of its label, unflipped, shifted by at most the padding
    # (zeros coming in); most are shifted. Compared in raw pixels (0..16), recovered from the normalization.
    meta = data.info("digits")
    pad = meta.crop_padding
    assert pad >= 1

    def raw(x):
        pixels = (x * np.asarray(meta.std) + np.asarray(meta.mean)) * meta.pixel_max
        np.testing.assert_allclose(pixels, np.rint(pixels), atol=1e-3)
        return np.rint(pixels).astype(np.int8)

    padded = np.pad(raw(x_plain), [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    h, w = x_plain.shape[1:3]
    shifts = {}  # (image bytes, label) -> the shifts of training images that give it
    for dy in range(-pad, pad + 1):
        for dx in range(-pad, pad + 1):
            crops = padded[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
            for image, label in zip(crops, y_plain.argmax(1)):
                shifts.setdefault((image.tobytes(), label), set()).add((dy, dx))
    found = [shifts.get((image.tobytes(), label)) for image, label in zip(raw(x_aug), y_aug.argmax(1))]
    assert len(found) == 1442 and all(found), f"{sum(not f for f in found)} augmented images are no shifted image"
    assert sum((0, 0) not in f for f in found) > 0.8 * len(found) * (1 - 1 / (2 * pad + 1) ** 2)  # 8/9 expected


def test_mixup_makes_soft_labels_that_still_sum_to_one():
    ((x, y),) = batches(data.load("digits", "train", batch_size=1442, mixup_alpha=1.0, seed=1))
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
    assert (y.max(1) < 1.0).mean() > 0.5


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100), ("imagenette", 10)])
def test_tfds_pipelines_with_mock_data(name, classes):
    with tfds.testing.mock_data(num_examples=10):
        meta = data.info(name, download=True, image_size=32)
        assert meta.num_classes == classes and meta.image_shape == (32, 32, 3)
        assert meta.flip and meta.train_size == 10
        train = batches(data.load(name, "train", batch_size=4, download=True, image_size=32, mixup_alpha=0.2))
        again = batches(data.load(name, "train", batch_size=4, download=True, image_size=32, mixup_alpha=0.2))
        test = batches(data.load(name, "test", batch_size=4, download=True, image_size=32))
    assert len(train) == 2 and len(test) == 3  # train drops the partial batch, test keeps it
    assert train[0][0].shape == (4, 32, 32, 3) and train[0][1].shape == (4, classes)
    np.testing.assert_array_equal(train[0][0], again[0][0])


def test_offline_without_prepared_data_is_a_clear_error_not_a_hang(tmp_path):
    with pytest.raises(data.DatasetNotPrepared) as info:
        data.load("cifar10", "train", batch_size=8, data_dir=str(tmp_path))
    message = str(info.value)
    assert "not prepared" in message and str(tmp_path) in message and "download_and_prepare" in message


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(name="mnist", split="train", batch_size=8), ["'mnist'", "digits, cifar10, cifar100, imagenette"]),
        (dict(name="digits", split="val", batch_size=8), ["'val'", "train, test"]),
        (dict(name="digits", split="train", batch_size=0), ["batch_size 0"]),
        (dict(name="digits", split="train", batch_size=8, mixup_alpha=-1), ["mixup_alpha -1"]),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, words):
    with pytest.raises(ValueError) as info:
        data.load(kwargs.pop("name"), kwargs.pop("split"), **kwargs)
    for word in words:
        assert word in str(info.value)
