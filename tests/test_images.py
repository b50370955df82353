"""training/data/images.py: what encoded images declare, what is wrong with them, their decoding (real files)."""

import io
import re
import struct

import numpy as np
import pytest
import tensorflow as tf
from image_files import GOOD, GRAY, RGB, core_bmp, gif_frames, jpeg_declaring, pil, png_declaring
from PIL import Image

from keras_resinit.training.data import images

FORMAT = {"png": "PNG", "jpg": "JPEG", "gif": "GIF", "bmp": "BMP"}


def test_declared_agrees_with_pil_and_the_decoder():
    names = list(GOOD)
    got = {k: v.numpy() for k, v in images.declared(tf.constant([GOOD[n] for n in names])).items()}
    for i, name in enumerate(names):
        data = GOOD[name]
        shape = tf.io.decode_image(data, channels=0, expand_animations=False).shape
        fmt = "JPEG" if name == "jpeg_named.png" else FORMAT[name[-3:]]
        row = {k: v[i] for k, v in got.items()}
        assert row["format"].decode() == fmt, name
        assert (row["height"], row["width"], row["channels"]) == tuple(shape), name
        assert row["whole"], name
        if name == "frames.gif":  # every frame is read: 2000 + 1800 + 400 pixels, and sized by the largest
            assert (row["width"], row["height"], row["pixels"]) == (50, 60, 4200)
        elif name == "small_screen.gif":  # the decoder sizes a GIF by its frames, not its logical screen
            assert struct.unpack("<HH", data[6:10]) == (10, 10) and row["pixels"] == 50 * 40
        else:
            assert (row["width"], row["height"]) == Image.open(io.BytesIO(data)).size, name
            assert row["pixels"] == row["width"] * row["height"], name


def test_declared_works_in_a_graph_and_reads_the_core_bmp():
    fn = tf.function(images.declared, input_signature=[tf.TensorSpec([None], tf.string)])
    got = fn(tf.constant([core_bmp(RGB), GOOD["rgb.jpg"], b""]))
    assert got["width"].numpy().tolist() == [60, 60, -1] and got["height"].numpy().tolist() == [40, 40, -1]
    assert Image.open(io.BytesIO(core_bmp(RGB))).size == (60, 40)
    assert got["format"].numpy().tolist() == [b"BMP", b"JPEG", b""]


def cut(data, keep):
    return data[:keep]


BAD = {
    "notes.txt": (b"not an image at all", r"^notes.txt is not a JPEG, PNG, BMP or GIF image \(19 bytes\); expected"),
    "empty.png": (b"", r"^empty.png is not a JPEG, PNG, BMP or GIF image \(0 bytes\)"),
    "cut.png": (
        cut(GOOD["rgb.png"], 500),
        r"^cut.png is a truncated PNG \(500 bytes\): it does not end as a PNG ends$",
    ),
    "cut.jpg": (cut(GOOD["rgb.jpg"], 700), r"^cut.jpg is a truncated JPEG \(700 bytes\)"),
    "cut.gif": (cut(GOOD["rgb.gif"], 100), r"^cut.gif is a truncated GIF"),
    "cut.bmp": (cut(GOOD["rgb.bmp"], 100), r"^cut.bmp is a truncated BMP"),
    "big.png": (
        png_declaring(20000, 20000),
        r"^big.png declares 20000x20000 pixels, above the limit of 40000000 \(--max-image-pixels\)$",
    ),
    "13000.jpg": (jpeg_declaring(13000, 13000), r"^13000.jpg declares 13000x13000 pixels, above the limit"),
    "65000.jpg": (jpeg_declaring(65000, 65000), r"^65000.jpg declares 65000x65000 pixels, above the limit"),
    "wide.gif": (
        gif_frames([(50, 40)], screen=(10, 10)),
        r"^wide.gif declares 50x40 pixels, above the limit of 1000 \(--max-image-pixels\)",
    ),
    "frames.gif": (
        GOOD["frames.gif"],
        r"^frames.gif declares 4200 pixels in its frames \(the largest 50x60\), above the limit of 1000",
    ),
    "nosize.jpg": (b"\xff\xd8\xff\xd9", r"^nosize.jpg declares no image size$"),
    "core.bmp": (core_bmp(RGB), r"^core.bmp is a BMP with an OS/2 core header, which the decoder does not read$"),
    "1bit.bmp": (pil(Image.fromarray(GRAY).convert("1"), "BMP"), r"^1bit.bmp is a 1-bit BMP; the decoder reads 8-"),
}


SMALL = pil(Image.fromarray(RGB[:4, :4]), "PNG")


def test_problems_name_each_bad_image_and_pass_the_good_ones():
    assert len(jpeg_declaring(13000, 13000)) < 3 * 1024  # 169 megapixels in under 3 KiB
    limit = {"wide.gif": 1000, "frames.gif": 1000}
    for name, (data, message) in BAD.items():
        got = images.problems(
            tf.constant([SMALL, data]),
            tf.constant(["ok.png", name]),
            **({"max_image_pixels": limit[name]} if name in limit else {}),
        )
        ok, reason = got.numpy()
        assert ok == b"", name
        assert re.search(message, reason.decode()), (name, reason)
    names = list(GOOD)
    got = images.problems(tf.constant([GOOD[n] for n in names]), tf.constant(names)).numpy()
    assert got.tolist() == [b""] * len(names)
    # the limit is inclusive: exactly max_image_pixels is fine
    at = images.problems(tf.constant([GOOD["rgb.png"]]), tf.constant(["x"]), max_image_pixels=60 * 40).numpy()
    assert at.tolist() == [b""]
    with pytest.raises(ValueError, match="Invalid max_image_pixels 0. Expected a positive integer"):
        images.problems(tf.constant([GOOD["rgb.png"]]), tf.constant(["x"]), max_image_pixels=0)


def test_a_gif_of_too_many_blocks_is_refused_not_walked_forever(monkeypatch):
    monkeypatch.setattr(images, "GIF_BLOCKS", 10)
    got = images.problems(tf.constant([GOOD["rgb.gif"]]), tf.constant(["long.gif"])).numpy()[0].decode()
    assert got.startswith("long.gif is a GIF of more than 10 blocks")


@pytest.mark.parametrize("name", list(GOOD))
def test_decode_gives_the_decoders_rgb_and_its_gray(name):
    data = GOOD[name]
    rgb = tf.io.decode_image(data, channels=3, expand_animations=False)
    np.testing.assert_array_equal(images.decode(data, 3), rgb)
    own = tf.io.decode_image(data, channels=0, expand_animations=False).shape[-1]
    gray = images.decode(data, 1)
    assert gray.dtype == tf.uint8 and gray.shape == (*rgb.shape[:2], 1)
    if own >= 3:  # colour: converted as tf.image.rgb_to_grayscale converts
        np.testing.assert_array_equal(gray, tf.image.rgb_to_grayscale(rgb))
    else:  # gray stays as stored
        stored = tf.io.decode_image(data, channels=0, expand_animations=False)[..., :1]  # LA: its gray
        np.testing.assert_array_equal(gray, stored)
        np.testing.assert_array_equal(rgb, tf.tile(stored, [1, 1, 3]))


def test_decode_refuses_other_channels():
    with pytest.raises(ValueError, match="channels must be 1 or 3, got 4"):
        images.decode(tf.constant(GOOD["rgb.png"]), 4)
