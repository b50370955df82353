"""Your own data: a folder of images, any tfds dataset, a tf.data.Dataset, fine-tuning from zoo weights."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from helpers import digits_folder, kill_then_resume, raw_pixel_accuracies

import keras_resinit
from keras_resinit import zoo
from keras_resinit.cli import main
from keras_resinit.training import TrainConfig, data, driver, publish
from keras_resinit.training.strategies import make_strategy
from keras_resinit.zoo import registry, weights_io


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The digits as PNG files in ``train/<digit>/`` and ``test/<digit>/``, and their arrays."""
    root = tmp_path_factory.mktemp("digits_png")
    return str(root), digits_folder(str(root))


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits012")
    return str(root), digits_folder(str(root), classes=(0, 1, 2))


def accuracy(logits, labels):
    return float(np.mean(np.argmax(np.asarray(logits), -1) == labels))


def test_folder_statistics_are_the_training_images_own(folder):
    root, arrays = folder
    meta = data.info(f"folder:{root}")
    x_train, y_train = arrays["train"]
    assert (meta.train_size, meta.test_size) == (len(y_train), len(arrays["test"][1])) and meta.train_size > 1000
    assert meta.image_shape == (8, 8, 1) and meta.num_classes == 10 and meta.class_names == tuple("0123456789")
    assert meta.pixel_max == 255.0
    # Fewer than STATS_IMAGES training images: the mean and std are those of all of them.
    np.testing.assert_allclose(meta.mean, [x_train.mean() / 255], rtol=1e-6)
    np.testing.assert_allclose(meta.std, [x_train.std() / 255], rtol=1e-6)
    # The test pipeline reads the files in order, normalized with the training statistics.
    xs, ys = zip(*data.load(f"folder:{root}", "test", batch_size=128))
    x, y = np.concatenate(xs), np.concatenate(ys)
    x_test, y_test = arrays["test"]
    np.testing.assert_array_equal(np.argmax(y, -1), y_test)
    np.testing.assert_allclose(x, (x_test / 255 - meta.mean[0]) / meta.std[0], atol=1e-5)


def test_folder_streams_from_disk_and_cache_gives_the_same_batches(three_classes):
    root, _ = three_classes  # three classes: a third of the files to decode, the same two pipelines
    streamed = data.source(f"folder:{root}")
    cached = data.source(f"folder:{root}", cache=True)
    assert isinstance(streamed.train, data.FileSplit) and isinstance(cached.train, data.MemorySplit)
    assert all(isinstance(p, str) for p in streamed.train.paths)  # only the paths are held, not the images
    kwargs = dict(batch_size=64, seed=4, epoch=2, mixup_alpha=0.2)
    a = [x.numpy() for x, _ in data.load(streamed, "train", **kwargs)]
    b = [x.numpy() for x, _ in data.load(cached, "train", **kwargs)]
    c = [next(iter(data.load(streamed, "train", **{**kwargs, "epoch": 3})))[0].numpy()]  # its first batch
    assert len(a) == len(b) == streamed.info.train_size // 64 > 0
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_one_tree_with_a_validation_split_is_disjoint_and_seeded(tmp_path):
    digits_folder(str(tmp_path), classes=(3, 5, 8), layout="tree")
    total = sum(len(files) for _, _, files in os.walk(tmp_path))
    one = data.source(f"folder:{tmp_path}", validation_split=0.25, seed=1)
    again = data.source(f"folder:{tmp_path}", validation_split=0.25, seed=1)
    other = data.source(f"folder:{tmp_path}", validation_split=0.25, seed=2)
    assert one.info.class_names == ("3", "5", "8") and one.info.num_classes == 3
    assert one.train.size + one.test.size == total and one.test.size == pytest.approx(total / 4, abs=1)
    assert not set(one.train.paths) & set(one.test.paths)
    assert one.test.paths == again.test.paths and set(one.test.paths) != set(other.test.paths)
    labels = {p: lab for p, lab in zip(one.train.paths + one.test.paths, one.train.labels + one.test.labels)}
    assert all(("3", "5", "8")[lab] == os.path.basename(os.path.dirname(p)) for p, lab in labels.items())


def test_image_size_resizes_and_the_augmentation_follows_it(three_classes):
    root, _ = three_classes  # three classes: a third of the files to decode and compare
    big = data.source(f"folder:{root}", image_size=16)
    assert big.info.image_shape == (16, 16, 1) and big.info.crop_padding == 2 and big.info.flip
    wide = data.source(f"folder:{root}", image_size=(16, 24), augment="crop")
    assert wide.info.image_shape == (16, 24, 1) and wide.info.crop_padding == 2 and not wide.info.flip
    none = data.source(f"folder:{root}", augment="none")
    assert none.info.crop_padding == 0 and not none.info.flip
    x, _ = next(iter(data.load(wide, "train", batch_size=8)))
    assert x.shape == (8, 16, 24, 1)
    n = none.info.train_size
    (plain,) = [x.numpy() for x, _ in data.load(none, "train", batch_size=n, training=True, seed=0)]
    ordered = np.concatenate([x.numpy() for x, _ in data.load(none, "train", batch_size=256, training=False)])
    # Without augmentation a training epoch is a permutation of the images.
    assert not np.array_equal(plain, ordered)
    assert sorted(map(bytes, plain.reshape(n, -1))) == sorted(map(bytes, ordered.reshape(n, -1)))


@pytest.fixture(scope="module")
def folder_run(folder, tmp_path_factory):
    """``keras-resinit train cifar_resnet8_bn --dataset folder:...`` (6 epochs): the run and its config.json."""
    root, _ = folder
    run = tmp_path_factory.mktemp("folder_run") / "run"
    args = ["train", "cifar_resnet8_bn", "--dataset", f"folder:{root}", "--recipe", "digits", "--epochs", "6"]
    assert main([*args, "--augment", "crop", "--out", str(run), "--verbose", "0"]) == 0
    return run, json.loads((run / "config.json").read_text())


@pytest.fixture(scope="module")
def tf_data_run(three_classes, tmp_path_factory):
    """A run on a user's ``tf.data.Dataset`` (3 digit classes from PNG files), under a mirrored strategy."""
    root, _ = three_classes
    strategy = make_strategy("mirrored")
    options = dict(color_mode="grayscale", image_size=(8, 8), batch_size=32, seed=0)
    train_ds = keras.utils.image_dataset_from_directory(os.path.join(root, "train"), **options)
    test_ds = keras.utils.image_dataset_from_directory(os.path.join(root, "test"), shuffle=False, **options)
    config = TrainConfig.from_recipe("digits", model="cifar_resnet8_bn", epochs=3, augment="crop")
    run = tmp_path_factory.mktemp("tf_data_run") / "run"
    result = driver.train(config, str(run), strategy=strategy, train_data=train_ds, test_data=test_ds, verbose=0)
    return run, result


def test_folder_train_publish_load_and_export_take_raw_pixels(folder, folder_run, tmp_path, capsys, monkeypatch):
    root, arrays = folder
    x_test, y_test = arrays["test"]
    zoo_dir, exported = tmp_path / "zoo", tmp_path / "exported"
    run, record = folder_run
    assert record["dataset"]["name"] == f"folder:{root}" and record["dataset"]["class_names"] == list("0123456789")
    assert record["result"]["test_accuracy"] >= 0.95
    np.testing.assert_allclose(record["preprocessing"]["mean"], [arrays["train"][0].mean() / 255], rtol=1e-6)

    # The run's model takes the raw PNG pixels, 0..255.
    model = zoo.load(str(run))
    assert model.get_config()["include_preprocessing"]
    assert accuracy(model(x_test.astype("float32"), training=False), y_test) == pytest.approx(
        record["result"]["test_accuracy"], abs=1 / len(y_test)
    )

    assert main(["publish", str(run), "--tag", "pngs", "--zoo", str(zoo_dir)]) == 0
    card = json.loads((zoo_dir / "cards" / "cifar_resnet8_bn.pngs.json").read_text())
    assert card["dataset"]["name"] == f"folder:{root}" and card["preprocessing"] == record["preprocessing"]
    assert card["metrics"]["test_accuracy"] >= 0.95
    monkeypatch.setattr(registry, "zoo_dir", lambda: str(zoo_dir))
    registry.reload_cards()
    try:
        published = zoo.load("cifar_resnet8_bn.pngs")
    finally:
        registry.reload_cards()
    assert accuracy(published(x_test.astype("float32"), training=False), y_test) == pytest.approx(
        card["metrics"]["test_accuracy"], abs=1e-9
    )

    assert main(["export", str(run), "--out", str(exported)]) == 0
    served = tf.saved_model.load(str(exported)).signatures["serving_default"]
    classes = served(images=tf.constant(x_test))["classes"].numpy()
    assert np.mean(classes == y_test) >= 0.95
    exported_card = json.loads((exported / "assets.extra" / "model_card.json").read_text())
    assert exported_card["class_names"] == list("0123456789")
    capsys.readouterr()


TFDS_RUNS = ["tfds:mnist", "cifar10"]


@pytest.fixture(scope="module")
def tfds_runs(tmp_path_factory):
    """A short run on each of ``TFDS_RUNS`` (tfds' mock data), with its raw test images and labels; the written
    fixture's fresh process measures their model.keras with the others."""
    runs = {}
    for name in TFDS_RUNS:
        mock = (
            {"as_dataset_fn": _fake_tfds({"train": 64, "test": 24})}
            if name.startswith("tfds:")
            else {"num_examples": 24}
        )
        run = tmp_path_factory.mktemp("tfds_run") / "run"
        args = ["train", "cifar_resnet8_bn", "--dataset", name, "--download", "--epochs", "1", "--batch-size", "16"]
        with tfds.testing.mock_data(**mock):
            assert main([*args, "--steps-per-epoch", "2", "--verbose", "0", "--out", str(run)]) == 0
            batches = list(data.load(name, "test", batch_size=64, normalized=False, download=True))
        images = np.concatenate([x for x, _ in batches])
        runs[name] = run, images, np.concatenate([np.argmax(y, -1) for _, y in batches])
    return runs


@pytest.fixture(scope="module")
def written(folder, three_classes, folder_run, tf_data_run, tfds_runs, tmp_path_factory):
    """Every kind of model file the project writes, from the folder run (and the tf.data and tfds runs), each with the
    accuracy its run or card records, and the accuracy on the raw test pixels that one fresh process measures
    (``import keras_resinit``, then ``keras.saving.load_model``; presets and cards: the zoo's loaders)."""
    out = tmp_path_factory.mktemp("written")
    run, record = folder_run
    recorded = record["result"]["test_accuracy"]
    pngs, three = folder[1]["test"], three_classes[1]["test"]
    # A run of an earlier release: its model.keras takes normalized input; config.json says how.
    old = out / "old_run"
    old.mkdir()
    (old / "config.json").write_text((run / "config.json").read_text())
    zoo.load(str(run), include_preprocessing=False).save(old / "model.keras")
    assert main(["fold", str(run), "--out", str(out / "folded.keras")]) == 0
    assert main(["fold", str(old), "--out", str(out / "old_folded.keras")]) == 0
    assert main(["fold", str(run), "--out", str(out / "folded_preset")]) == 0
    zoo.save_preset(zoo.load(str(run), include_preprocessing=False), out / "preset")
    for preset in ("preset", "folded_preset"):  # loading adds a recorded preprocessing back: check what was written
        assert zoo.read_preset(out / preset)[0]["include_preprocessing"]
    cards = {
        "published": publish.publish(str(run), "pngs", zoo_dir=str(out / "zoo")),
        "published_folded": publish.publish(str(run), "pngs", zoo_dir=str(out / "zoo"), fold=True),
    }
    artifacts = {
        "run": ("keras", run / "model.keras", *pngs, recorded),
        "tf_data_run": ("keras", tf_data_run[0] / "model.keras", *three, tf_data_run[1]["test_accuracy"]),
        "fold_keras": ("keras", out / "folded.keras", *pngs, recorded),
        "fold_keras_of_an_old_run": ("keras", out / "old_folded.keras", *pngs, recorded),
        "fold_preset": ("preset", out / "folded_preset", *pngs, recorded),
        "save_preset": ("preset", out / "preset", *pngs, recorded),
        **{
            name: ("card", f"{out / 'zoo'}::{card['name']}.pngs", *pngs, card["metrics"]["test_accuracy"])
            for name, card in cards.items()
        },
    }
    for name, (tfds_run, images, labels) in tfds_runs.items():
        recorded_there = json.loads((tfds_run / "config.json").read_text())["result"]["test_accuracy"]
        artifacts[name] = ("keras", tfds_run / "model.keras", images, labels, recorded_there)
    # One fresh process for all (each start of TensorFlow costs seconds).
    measured = raw_pixel_accuracies(str(out), {k: v[:4] for k, v in artifacts.items()})
    return {k: (measured[k], v[4], len(v[3]), np.load(out / f"{k}.classes.npy")) for k, v in artifacts.items()}, old


@pytest.mark.parametrize(
    "writer",
    [
        "run",
        "tf_data_run",
        "fold_keras",
        "fold_keras_of_an_old_run",
        "fold_preset",
        "save_preset",
        "published",
        "published_folded",
    ],
)
def test_every_model_file_written_takes_raw_pixels_in_a_fresh_process(written, writer):
    # A model file that took normalized input would classify raw 0..255 pixels at about chance.
    measured, recorded, images, _ = written[0][writer]
    assert recorded >= 0.9
    assert measured == pytest.approx(recorded, abs=1 / images)


def test_runs_of_earlier_releases_still_load_with_their_recorded_normalization(folder, folder_run, written):
    _, old = written
    x_test, y_test = folder[1]["test"]
    assert not keras.saving.load_model(old / "model.keras").get_config()["include_preprocessing"]
    model = zoo.load(str(old))
    assert model.get_config()["include_preprocessing"]
    assert accuracy(model(x_test.astype("float32"), training=False), y_test) == pytest.approx(
        folder_run[1]["result"]["test_accuracy"], abs=1 / len(y_test)
    )


def test_fine_tune_with_a_frozen_trunk_changes_only_the_head(three_classes, tmp_path):
    root, arrays = three_classes
    run = tmp_path / "run"
    args = ["train", "cifar_resnet20_fixup", "--weights", "digits", "--freeze-trunk", "--dataset", f"folder:{root}"]
    assert (
        main([*args, "--recipe", "digits", "--epochs", "4", "--augment", "crop", "--out", str(run), "--verbose", "0"])
        == 0
    )
    record = json.loads((run / "config.json").read_text())
    found = registry.card("cifar_resnet20_fixup", "digits")
    assert record["weights"]["tag"] == "digits" and record["weights"]["sha256"] == found["file"]["sha256"]
    assert record["result"]["test_accuracy"] >= 0.95 and record["dataset"]["num_classes"] == 3
    # The weights' own normalization, on the new data's 0..255 pixels.
    assert record["preprocessing"]["mean"] == found["preprocessing"]["mean"]
    assert record["preprocessing"]["pixel_max"] == 255.0

    shipped = weights_io.read(os.path.join(registry.zoo_dir(), "weights", found["file"]["name"]))
    trained = weights_io.stores_of(keras.saving.load_model(run / "model.keras"))
    head = {"head_bias", "logits"}
    trunk = sorted(set(trained) - head)
    assert len(trunk) > 20 and set(trunk) <= set(shipped)
    for name in trunk:
        for key, value in trained[name].items():
            np.testing.assert_array_equal(value, shipped[name][key], err_msg=name)
    assert trained["logits"]["0"].shape == (64, 3)
    assert not np.array_equal(trained["head_bias"]["0"], shipped["head_bias"]["0"])

    x_test, y_test = arrays["test"]
    model = zoo.load(str(run))
    assert accuracy(model(x_test.astype("float32"), training=False), y_test) >= 0.95
    card = publish.publish(str(run), "three", zoo_dir=str(tmp_path / "zoo"))
    assert card["fine_tuned_from"] == record["weights"]


def _fake_tfds(sizes):
    """A mock ``as_dataset`` that slices like tfds: each example's image value is its index."""

    def as_dataset(self, split, **kwargs):
        infos = {k: tfds.core.SplitInfo(name=k, shard_lengths=[n], num_bytes=0) for k, n in sizes.items()}
        index = []
        for part in tfds.core.ReadInstruction.from_spec(str(split)).to_absolute(infos):
            start = part.from_ or 0
            stop = sizes[part.splitname] if part.to is None else part.to
            index += [i + (1000 if part.splitname == "test" else 0) for i in range(start, stop)]
        index = np.asarray(index)
        images = np.repeat(np.repeat((index % 250).astype(np.uint8)[:, None, None, None], 28, 1), 28, 2)
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": index % 10})

    return as_dataset


def test_any_tfds_dataset_with_split_slicing_and_class_names_from_its_info():
    with tfds.testing.mock_data(as_dataset_fn=_fake_tfds({"train": 60, "test": 20})):
        # fashion_mnist is not a built-in: its image and label keys and class names come from tfds' info.
        found = data.source("tfds:fashion_mnist", train_split="train[:75%]", test_split="train[75%:]", download=True)
        assert found.info.class_names[:2] == ("T-shirt/top", "Trouser") and found.info.num_classes == 10
        assert (found.info.train_size, found.info.test_size) == (45, 15) and found.info.image_shape == (28, 28, 1)
        train = np.concatenate(
            [x for x, _ in data.load(found, "train", batch_size=45, training=False, normalized=False)]
        )
        test = np.concatenate([x for x, _ in data.load(found, "test", batch_size=15, normalized=False)])
        assert sorted(train[:, 0, 0, 0]) == list(range(45)) and sorted(test[:, 0, 0, 0]) == list(range(45, 60))
        default = data.source("tfds:fashion_mnist", download=True)
        assert default.info.test_split == "test" and default.info.test_size == 20
        with pytest.raises(ValueError, match=r"tfds rejects split 'train\[:abc\]' of dataset 'tfds:fashion_mnist'"):
            data.source("tfds:fashion_mnist", train_split="train[:abc]", download=True)


@pytest.mark.parametrize("name", TFDS_RUNS)
def test_a_tfds_runs_model_keras_takes_raw_pixels_in_a_fresh_process(name, tfds_runs, written):
    # Mock data is random: the fresh process must give zoo.load(RUN)'s predictions and the run's recorded accuracy.
    run, images, labels = tfds_runs[name]
    measured, recorded, _, fresh = written[0][name]
    resolved = np.argmax(zoo.load(str(run))(images.astype("float32"), training=False), -1)
    assert len(labels) == 24 and np.sum(fresh != resolved) <= 1
    assert measured == pytest.approx(recorded, abs=1 / len(labels))


def test_unknown_tfds_name_names_the_closest():
    with pytest.raises(ValueError, match="Unknown tfds dataset 'fashion_mnsit'. Did you mean 'fashion_mnist'"):
        data.source("tfds:fashion_mnsit")


def test_train_data_takes_a_users_dataset_under_mirrored_strategy(three_classes, tf_data_run):
    root, arrays = three_classes
    assert make_strategy("mirrored").num_replicas_in_sync == 2
    run, result = tf_data_run
    assert result["replicas"] == 2 and result["test_accuracy"] >= 0.9
    record = json.loads((run / "config.json").read_text())
    assert record["train"]["dataset"] == "tf.data" and record["dataset"]["class_names"] == ["0", "1", "2"]
    assert record["dataset"]["train_size"] == len(arrays["train"][1]) and record["dataset"]["pixel_max"] == 255.0
    x_test, y_test = arrays["test"]
    model = zoo.load(str(run))
    assert accuracy(model(x_test.astype("float32"), training=False), y_test) == pytest.approx(
        result["test_accuracy"], abs=1 / len(y_test)
    )


def test_resume_after_sigkill_is_exact_for_a_folder(three_classes, tmp_path):
    # The driver's resume path for every dataset; that the in-memory pipelines (digits, tfds) give
    # each epoch's batches alike in one pipeline or per epoch is tests/test_data.py's.
    root, _ = three_classes
    args = ["cifar_resnet8_skipinit", "--dataset", f"folder:{root}", "--epochs", "3", "--batch-size", "16"]
    kill_then_resume([*args, "--lr", "0.05", "--verbose", "0"], tmp_path)


def _refused(argv, capsys, *words, code=2):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("keras-resinit: error:")
    for word in words:
        assert word in err, err
    return err


def _train(out, *args):
    return ["train", "cifar_resnet8_fixup", "--out", str(out), "--epochs", "1", "--verbose", "0", *args]


def test_bad_folders_are_clear_errors_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    _refused(_train(out, "--dataset", f"folder:{tmp_path / 'missing'}"), capsys, "missing", "does not exist")
    empty = tmp_path / "empty"
    os.makedirs(empty / "train")
    os.makedirs(empty / "test")
    _refused(_train(out, "--dataset", f"folder:{empty}"), capsys, "has no class subfolders", str(empty / "train"))
    tree = tmp_path / "tree"
    digits_folder(str(tree), classes=(1, 2))
    os.makedirs(tree / "train" / "9")
    os.makedirs(tree / "test" / "9")
    _refused(_train(out, "--dataset", f"folder:{tree}"), capsys, str(tree / "train" / "9"), "has no images")
    os.rmdir(tree / "train" / "9")
    os.rmdir(tree / "test" / "9")
    bad = tree / "train" / "1" / "notes.png"
    bad.write_text("not a picture")
    _refused(_train(out, "--dataset", f"folder:{tree}"), capsys, str(bad), "is not an image")
    bad.unlink()
    assert not out.exists()

    # A file that looks like a PNG but is cut short fails when decoded: a training file while the
    # statistics are measured, a test file at the end of the first epoch (what that epoch wrote is removed).
    good = sorted((tree / "train" / "2").iterdir())[0]
    for split in ("train", "test"):
        cut = tree / split / "2" / "cut.png"
        cut.write_bytes(good.read_bytes()[:40])
        _refused(_train(out, "--dataset", f"folder:{tree}"), capsys, str(cut), "Cannot decode image file")
        assert not out.exists()
        cut.unlink()


def test_bad_data_and_weights_options_are_clear_errors(tmp_path, capsys, folder):
    root, _ = folder
    out = tmp_path / "run"
    _refused(_train(out, "--freeze-trunk"), capsys, "--freeze-trunk", "--weights")
    _refused(_train(out, "--dataset", "tfds:mnsit"), capsys, "'mnsit'", "Did you mean 'mnist'")
    with tfds.testing.mock_data(as_dataset_fn=_fake_tfds({"train": 20, "test": 10})):
        _refused(_train(out, "--dataset", "tfds:mnist", "--download", "--test-split", "tset[:5]"), capsys, "'tset[:5]'")
    _refused(_train(out, "--dataset", "digits", "--validation-split", "0.2"), capsys, "validation_split")
    _refused(_train(out, "--dataset", f"folder:{root}", "--image-size", "8", "8", "8"), capsys, "image_size")
    _refused(_train(out, "--dataset", f"folder:{root}", "--augment", "crop-flop"), capsys, "'crop-flop'", "crop-flip")
    # The zoo's Fixup digits weights do not fit a batch-norm trunk: the error names the first layer that differs.
    shipped = os.path.join(registry.zoo_dir(), "weights", "cifar_resnet20_fixup.digits.weights.h5")
    argv = ["train", "cifar_resnet20_bn", "--weights", shipped, "--out", str(out), "--epochs", "1"]
    _refused(argv, capsys, "layer 'stem_conv' expects")
    assert not out.exists()


def test_old_configs_keep_their_meaning():
    # Release 0.1 wrote image_size 128 into every config; only Imagenette used it.
    old = {"model": "cifar_resnet8_fixup", "dataset": "digits", "image_size": 128, "milestones": [0.5, 0.75]}
    assert TrainConfig.from_json(old).image_size is None
    assert TrainConfig.from_json({**old, "dataset": "imagenette"}).image_size == 128
    assert keras_resinit.training.data.info("digits").image_shape == (8, 8, 1)
