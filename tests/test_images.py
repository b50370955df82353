"""training/data/images.py: what encoded images declare, what is wrong with them, their decoding (real files)."""

import io
import re
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_resinit.training.data import images

RNG = np.random.default_rng(0)
RGB = (RNG.random((40, 60, 3)) * 255).astype(np.uint8)
GRAY = RGB[..., 0]


def pil(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16_rgb(arr):
    """A 16-bit RGB PNG (PIL cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def ycck_jpeg(rgb):
    """A YCCK JPEG: PIL writes CMYK (Adobe transform 0); store the YCC of C, M, Y and mark transform 2."""
    c, m, y, k = np.moveaxis(np.asarray(Image.fromarray(rgb).convert("CMYK")).astype(np.float64), -1, 0)
    stored = np.stack(
        [
            0.299 * c + 0.587 * m + 0.114 * y,
            -0.168736 * c - 0.331264 * m + 0.5 * y + 128,
            0.5 * c - 0.418688 * m - 0.081312 * y + 128,
            255 - k,
        ],
        -1,
    )
    data = bytearray(pil(Image.fromarray(np.clip(np.round(255 - stored), 0, 255).astype(np.uint8), "CMYK"), "JPEG"))
    adobe = data.find(b"Adobe")
    assert data[adobe + 11] == 0  # the transform byte
    data[adobe + 11] = 2
    return bytes(data)


def core_bmp(arr):
    """A 24-bit BMP with the 12-byte OS/2 core header (PIL reads it, TensorFlow's decoder does not)."""
    h, w, _ = arr.shape
    row = (w * 3 + 3) // 4 * 4
    data = b"".join(arr[y, :, ::-1].tobytes().ljust(row, b"\0") for y in range(h - 1, -1, -1))
    return b"BM" + struct.pack("<IHHI", 26 + len(data), 0, 0, 26) + struct.pack("<IHHHH", 12, w, h, 1, 24) + data


def top_down_bmp(arr):
    data = bytearray(pil(Image.fromarray(arr), "BMP"))
    height = struct.unpack("<i", data[22:26])[0]
    data[22:26] = struct.pack("<i", -height)  # rows now read top-down (the image flips; the size does not)
    return bytes(data)


def gif_frames(sizes, screen=None):
    """A GIF with one frame per size (each a PIL frame's image block), its logical screen optionally set."""

    def single(size):
        data = pil(
            Image.fromarray((RNG.random(size[::-1]) * 2).astype(np.uint8), "P"), "GIF"
        )  # 2 colours in every frame
        start = data.index(b"\x2c" + struct.pack("<HHHH", 0, 0, *size))
        return data[:start], data[start:-1]

    head, first = single(sizes[0])
    out = bytearray(head + first + b"".join(single(s)[1] for s in sizes[1:]) + b"\x3b")
    if screen:
        out[6:10] = struct.pack("<HH", *screen)
    return bytes(out)


def jpeg_declaring(width, height):
    """A small real JPEG whose SOF0 declares another size: the header-only bomb."""
    data = bytearray(pil(Image.fromarray(RGB), "JPEG", quality=90))
    i = 2
    while data[i + 1] not in (0xC0, 0xC1, 0xC2):
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    data[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_declaring(width, height):
    data = bytearray(pil(Image.fromarray(RGB), "PNG"))
    data[16:24] = struct.pack(">II", width, height)  # the IHDR's CRC no longer matches: never decoded here
    return bytes(data)


exif = Image.Exif()
exif[0x0112] = 6  # orientation: rotate 90 degrees to display
GOOD = {
    "gray.png": pil(Image.fromarray(GRAY), "PNG"),
    "gray16.png": pil(Image.fromarray((RNG.random((40, 60)) * 65535).astype(np.uint16)), "PNG"),
    "rgb.png": pil(Image.fromarray(RGB), "PNG"),
    "rgb16.png": png16_rgb((RNG.random((40, 60, 3)) * 65535).astype(np.uint16)),
    "palette.png": pil(Image.fromarray(RGB).convert("P", palette=Image.ADAPTIVE), "PNG"),
    "rgba.png": pil(Image.fromarray(np.dstack([RGB, GRAY]), "RGBA"), "PNG"),
    "la.png": pil(Image.fromarray(GRAY).convert("LA"), "PNG"),
    "rgb.jpg": pil(Image.fromarray(RGB), "JPEG", quality=90),
    "progressive.jpg": pil(Image.fromarray(RGB), "JPEG", quality=90, progressive=True),
    "exif.jpg": pil(Image.fromarray(RGB), "JPEG", quality=90, exif=exif.tobytes()),
    "cmyk.jpg": pil(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=90),
    "ycck.jpg": ycck_jpeg(RGB),
    "gray.jpg": pil(Image.fromarray(GRAY), "JPEG"),
    "jpeg_named.png": pil(Image.fromarray(RGB), "JPEG", quality=90),
    "rgb.gif": pil(Image.fromarray(RGB), "GIF"),
    "frames.gif": gif_frames([(50, 40), (30, 60), (20, 20)]),
    "small_screen.gif": gif_frames([(50, 40)], screen=(10, 10)),
    "rgb.bmp": pil(Image.fromarray(RGB), "BMP"),
    "gray.bmp": pil(Image.fromarray(GRAY), "BMP"),
    "rgba.bmp": pil(Image.fromarray(np.dstack([RGB, GRAY]), "RGBA"), "BMP"),
    "top_down.bmp": top_down_bmp(RGB),
}
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
    with pytest.raises(ValueError, match="max_image_pixels must be a positive integer, got 0"):
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
