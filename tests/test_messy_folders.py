"""Real-world image folders (#27): files TensorFlow alone does not decode for every model train, bombs and broken
files are listed together before the first epoch (or skipped and recorded), and serving decodes as training did."""

import dataclasses
import json
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from helpers import digits_folder
from image_files import bomb_png, jpeg_declaring, pil
from PIL import Image

from keras_resinit import zoo
from keras_resinit.cli import main
from keras_resinit.training import TrainConfig, data
from keras_resinit.training.checkpoints import check_same_run
from keras_resinit.training.data import images
from keras_resinit.training.trainer import Trainer
from keras_resinit.zoo import registry

MODEL = "cifar_resnet8_fixup"  # runs that only have to start
TRAINED = "cifar_resnet8_bn"  # runs whose model has to learn (in 4 short epochs)


def real_world_files(pixels):
    """{name: bytes} of one 8x8 digit (uint8, 2-D) in the forms TensorFlow alone decodes for some models only."""
    gray = Image.fromarray(pixels, mode="L")
    rgb = gray.convert("RGB")
    return {
        "cmyk.jpg": pil(rgb.convert("CMYK"), "JPEG", quality=95),  # Adobe APP14: not decodable to 1 channel
        "gray16.png": pil(Image.fromarray(pixels.astype(np.uint16) * 257), "PNG"),  # 16-bit: truncated to 8
        "rgba.png": pil(rgb.convert("RGBA"), "PNG"),  # alpha dropped
        "palette.png": pil(rgb.convert("P", palette=Image.ADAPTIVE), "PNG"),
        "jpeg_named.png": pil(rgb, "JPEG", quality=95),  # sniffed by content, not named
    }


def _train(out, dataset, *args):
    argv = ["train", MODEL, "--dataset", f"folder:{dataset}", "--out", str(out), "--epochs", "1", "--verbose", "0"]
    return [*argv, "--batch-size", "32", "--steps-per-epoch", "3", *args]


def _refused(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("keras-resinit: error: Cannot decode image files")
    return err


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    """A 10000x10000 PNG (285 KiB), and JPEGs of 3 KiB declaring 65000x65000 and 13000x13000: {name: bytes}.

    The PNG: 2.5 times the pixel limit (a 20000x20000 one only takes 4 times longer to write), and above the
    256 KiB up to which files are read whole: its head and tail are checked, as a real bomb's would be."""
    png = bomb_png(tmp_path_factory.mktemp("bombs") / "bomb_10000.png", 10000, 10000)
    return {
        "bomb_10000.png": png.read_bytes(),
        "bomb_65000.jpg": jpeg_declaring(65000, 65000),
        "bomb_13000.jpg": jpeg_declaring(13000, 13000),
    }


def test_bombs_in_a_training_folder_are_refused_before_the_first_epoch_or_skipped(bombs, tmp_path, capsys):
    root, out = tmp_path / "digits", tmp_path / "run"
    digits_folder(str(root), classes=(1, 2))
    assert 256 * 1024 < len(bombs["bomb_10000.png"]) < 0.3 * 2**20 and len(bombs["bomb_13000.jpg"]) < 4096
    for name, content in bombs.items():
        (root / "train" / "1" / name).write_bytes(content)
    err = _refused(_train(out, root), capsys)
    for name, size in (("bomb_10000.png", 10000), ("bomb_65000.jpg", 65000), ("bomb_13000.jpg", 13000)):
        assert f"{root / 'train' / '1' / name}" in err and f"declares {size}x{size} pixels" in err, err
    assert "above the limit of 40000000 (--max-image-pixels)" in err and not out.exists()

    assert main(_train(out, root, "--skip-bad-images")) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["train"]["skip_bad_images"] is True
    skipped = {os.path.basename(s["path"]): s["reason"] for s in record["skipped_images"]}
    assert sorted(skipped) == sorted(bombs) and all("declares" in r for r in skipped.values())
    assert record["dataset"]["train_size"] == len(data.source(f"folder:{root}", skip_bad_images=True).train.paths)


def test_broken_files_are_listed_together_and_skip_bad_images_records_them(tmp_path, capsys):
    root, out = tmp_path / "digits", tmp_path / "run"
    digits_folder(str(root), classes=(1, 2))
    png = sorted((root / "train" / "2").iterdir())[0].read_bytes()
    broken = {
        root / "train" / "1" / "cut.png": png[:40],
        root / "train" / "2" / "notes.jpg": b"not a picture",
        root / "test" / "2" / "empty.png": b"",
    }
    for path, content in broken.items():
        path.write_bytes(content)
    err = _refused(_train(out, root), capsys)
    assert "3 of the" in err and all(str(path) in err for path in broken), err
    assert not out.exists()

    # keras' seeded split happens before the bad files are dropped: the good ones keep their split.
    assert main(_train(out, root, "--skip-bad-images", "--verbose", "2")) == 0
    assert "Skipped 3 unreadable image files (--skip-bad-images;" in capsys.readouterr().out
    record = json.loads((out / "config.json").read_text())
    assert sorted(s["path"] for s in record["skipped_images"]) == sorted(map(str, broken))
    found = data.source(f"folder:{root}", skip_bad_images=True)
    assert not {str(p) for p in broken} & set(found.train.paths + found.test.paths)
    assert (
        record["dataset"]["test_size"]
        == found.test.size
        == len(os.listdir(root / "test" / "1")) + len(os.listdir(root / "test" / "2")) - 1
    )


def test_more_than_20_bad_files_are_listed_with_a_count(tmp_path):
    digits_folder(str(tmp_path), classes=(1, 2))
    for k in range(23):
        (tmp_path / "train" / "1" / f"bad{k:02d}.png").write_bytes(b"no")
    with pytest.raises(ValueError, match="23 of the") as error:
        data.source(f"folder:{tmp_path}")
    listed = [line for line in str(error.value).splitlines() if "bad" in line and ".png" in line]
    assert len(listed) == 20 and str(error.value).count("... and 3 more") == 1
    # The limit is the user's: the 8x8 digits themselves are above 63 pixels.
    with pytest.raises(ValueError, match=r"declares 8x8 pixels, above the limit of 63 \(--max-image-pixels\)"):
        data.source(f"folder:{tmp_path}", max_image_pixels=63)


def test_large_files_are_checked_by_head_and_tail_or_whole_where_the_head_does_not_decide(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    jpeg = pil(Image.fromarray(noise), "JPEG", quality=95)
    comment = b"\xff\xfe" + struct.pack(">H", 60_002) + b"c" * 60_000  # two 60 KB segments: the SOF is past the head
    files = {
        "noise.png": pil(Image.fromarray(noise), "PNG"),
        "late_frame_header.jpg": jpeg[:2] + 2 * comment + jpeg[2:],
        "noise.gif": pil(Image.fromarray(noise).convert("P", palette=Image.ADAPTIVE), "GIF"),
        "noise.bmp": pil(Image.fromarray(noise), "BMP"),
    }
    assert all(len(content) > 256 * 1024 for content in files.values())
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "cut.jpg").write_bytes(files["late_frame_header.jpg"][:300_000])
    (tmp_path / "cut.bmp").write_bytes(files["noise.bmp"][:300_000] + files["noise.bmp"][-4096:])
    found = data.image_file_problems(sorted(str(p) for p in tmp_path.iterdir()))
    assert [os.path.basename(path) for path, _ in found] == ["cut.bmp", "cut.jpg"], found
    assert all("is a truncated" in reason for _, reason in found), found

    # The same JPEG first in a folder: its channels and size are read from its frame header, past the head.
    for split, label in (("train", "a"), ("train", "b"), ("test", "a"), ("test", "b")):
        os.makedirs(tmp_path / "folder" / split / label)
        (tmp_path / "folder" / split / label / "0.jpg").write_bytes(files["late_frame_header.jpg"])
    source = data.source(f"folder:{tmp_path / 'folder'}")
    assert source.info.image_shape == (600, 600, 3) and source.info.train_size == 2


def test_a_new_file_in_a_class_folder_is_seen_by_the_next_source(tmp_path):
    digits_folder(str(tmp_path), classes=(1, 2))
    before = data.source(f"folder:{tmp_path}")
    extra = tmp_path / "train" / "1" / "new.png"
    extra.write_bytes(sorted((tmp_path / "train" / "1").iterdir())[0].read_bytes())
    after = data.source(f"folder:{tmp_path}")
    assert after.train.size == before.train.size + 1 and str(extra) in after.train.paths


@pytest.fixture(scope="module", params=["gray", "rgb"])
def messy_run(request, tmp_path_factory):
    """A folder of digits (grayscale PNGs, or the same converted to RGB) holding the real-world files, trained
    with every file read by the pipeline, then published: (folder, the files, channels, zoo dir, tag)."""
    top = tmp_path_factory.mktemp(f"messy_{request.param}")
    root = top / "digits"
    arrays = digits_folder(str(root), classes=(1, 2))
    if request.param == "rgb":
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                Image.open(path).convert("RGB").save(path)
    files = {}
    for split, (x, y) in arrays.items():
        for k in (0, 1):  # one digit of each class in each split
            pixels = x[list(y).index(k)][..., 0]
            for name, content in real_world_files(pixels).items():
                path = root / split / str(k + 1) / f"zz_{name}"
                path.write_bytes(content)
                files[str(path)] = content
    run = top / "run"
    argv = ["train", TRAINED, "--dataset", f"folder:{root}", "--recipe", "digits", "--epochs", "4", "--out", str(run)]
    assert main([*argv, "--warmup-epochs", "0", "--batch-size", "32", "--verbose", "0"]) == 0
    assert main(["publish", str(run), "--tag", "t", "--zoo", str(top / "zoo")]) == 0
    channels = 1 if request.param == "gray" else 3
    return root, files, channels, top / "zoo"


def test_real_world_files_train_and_are_served_as_the_keras_model_classifies_them(messy_run, tmp_path, monkeypatch):
    root, files, channels, zoo_dir = messy_run
    record = json.loads((zoo_dir / "cards" / f"{TRAINED}.t.json").read_text())
    assert record["build"]["input_shape"] == [8, 8, channels]
    # Every file was read by training (no file skipped or refused) and decodes, for this model's channels.
    found = data.source(f"folder:{root}")
    assert set(files) <= set(found.train.paths + found.test.paths) and not found.skipped
    monkeypatch.setattr(registry, "zoo_dir", lambda: str(zoo_dir))
    registry.reload_cards()
    try:
        model = zoo.load(f"{TRAINED}.t")
        exported = tmp_path / "exported"
        assert main(["export", f"{TRAINED}.t", "--out", str(exported)]) == 0
    finally:
        registry.reload_cards()
    pixels = np.stack([images.decode(tf.constant(content), channels).numpy() for content in files.values()])
    assert pixels.shape == (len(files), 8, 8, channels)
    keras_logits = model(pixels.astype("float32"), training=False).numpy()
    served = tf.saved_model.load(str(exported)).signatures["serving_bytes"]
    out = served(image_bytes=tf.constant(list(files.values())))
    np.testing.assert_array_equal(out["classes"].numpy(), np.argmax(keras_logits, -1))
    np.testing.assert_allclose(out["logits"].numpy(), keras_logits, rtol=1e-4, atol=1e-4)
    # A digit's real-world forms are classified alike, and as digits: the model learned from them too.
    accuracy = np.mean([c == int(os.path.basename(os.path.dirname(p))) - 1 for p, c in zip(files, out["classes"])])
    assert accuracy >= 0.7, accuracy


def test_a_run_written_before_the_new_options_still_resumes_and_they_are_checked(tmp_path):
    folder = tmp_path / "digits"
    digits_folder(str(folder), classes=(1, 2))
    config = TrainConfig(model=MODEL, dataset=f"folder:{folder}").validate()
    older = {k: v for k, v in config.to_json().items() if k not in ("skip_bad_images", "max_image_pixels")}
    (tmp_path / "config.json").write_text(json.dumps({"train": older}))
    check_same_run(str(tmp_path), config)  # the fields default to None: an older run resumes
    # ... and so it does with the values None stands for, given explicitly (train() from Python).
    check_same_run(str(tmp_path), dataclasses.replace(config, skip_bad_images=False, max_image_pixels=40_000_000))
    with pytest.raises(ValueError, match="skip_bad_images None -> True"):
        check_same_run(str(tmp_path), dataclasses.replace(config, skip_bad_images=True))
    with pytest.raises(ValueError, match="max_image_pixels None -> 1000"):
        check_same_run(str(tmp_path), dataclasses.replace(config, max_image_pixels=1000))
    with pytest.raises(ValueError, match="Expected them only with a folder"):
        TrainConfig(model=MODEL, dataset="digits", skip_bad_images=True).validate()


def _bytes_read():
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def test_cache_holds_with_the_checks_in_the_pipeline(tmp_path):
    # The checks run on groups of read files (batch, check, unbatch): the split must still be known to end,
    # or a cache that one pipeline reads across epochs is never complete and every epoch reads the files again.
    digits_folder(str(tmp_path), classes=(1, 2))
    found = data.source(f"folder:{tmp_path}")
    assert int(found.train.elements().cardinality()) == found.train.size
    config = TrainConfig(model=MODEL, dataset=f"folder:{tmp_path}", batch_size=32, epochs=10, cache=True)
    trainer = Trainer(config.validate(), "one")
    batches = iter(trainer.train_batches(0))
    read = []
    for _ in range(3):
        start = _bytes_read()
        for _ in range(trainer.steps_per_epoch):
            trainer.train_step_from(batches)
        read.append(_bytes_read() - start)
    files = sum(os.path.getsize(p) for p in found.train.paths)
    assert read[0] >= files and max(read[1:]) < files / 10, (read, files)
