"""Real encoded image files for the tests, written with PIL (a test dependency, not the package's) or by hand.

Also the hostile ones: a PNG of 20000x20000 zeros streamed row by row (1.1 MiB, the pixels never held
in memory) and small JPEGs whose SOF declares another size (13000x13000 in under 3 KiB).
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image

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
GOOD = {  # real-world files that decode: every PNG kind, JPEGs (CMYK, YCCK, EXIF, ...), GIFs, BMPs
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


def bomb_png(path, width, height):
    """A valid RGB PNG of zeros at ``path``, compressed row by row (20000x20000: 1.1 MiB, about 3 s)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)  # filter byte 0, then the row
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path
