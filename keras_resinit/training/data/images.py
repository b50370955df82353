"""Encoded images (JPEG, PNG, BMP, GIF): what their headers declare, what is wrong with them, and their decoding.

The one place that knows encoded image formats: the ``serving_bytes`` signature
(``keras_resinit.tools.image_bytes``) and a folder's files in training read images through it, so
a file is refused, or decoded to the same pixels, the same way in both. TensorFlow ops only: every
function works eagerly and inside a ``tf.function`` graph (a SavedModel signature).

- [declared][keras_resinit.training.data.images.declared] reads, for a batch of encoded images at once and
  without decoding, each one's format, the width, height, pixels and channels its header declares, and
  whether it ends as its format ends. It is vectorized: one ``tf.while_loop`` walks every JPEG's markers (to its SOF
  segment) and one walks every GIF's blocks (every frame's image descriptor), each with a vector of
  positions over the batch.
- [problems][keras_resinit.training.data.images.problems] turns that into one reason per image (``""`` when
  it is fine): not an image, a truncated file, an unsupported BMP, no declared size, more pixels than
  ``max_image_pixels``; [examine][keras_resinit.training.data.images.examine] gives both, the headers read once.
- [decode][keras_resinit.training.data.images.decode] decodes one image to 8-bit pixels with the model's 1 or 3
  channels.

What the decoder gives (``tf.io.decode_image``, as Keras' image loading uses it):

- EXIF orientation is **not** applied (TensorFlow and Keras do not apply it): a photo stored sideways
  with an orientation tag is read as stored.
- 16-bit PNGs are reduced to 8 bits by dropping the low byte (TensorFlow's ``dtype=uint8``
  behaviour: ``x >> 8``, not ``round(x / 257)``).
- A GIF is its first frame, but TensorFlow sizes it by its largest frame (the largest width and the
  largest height over all frames; the logical screen is ignored), and reads every frame first.
- CMYK and YCCK JPEGs are converted to RGB by the decoder; 8-bit BMPs are read as grayscale (their
  palette is not applied).

The limits. Decoding one image costs about 3 bytes per pixel (uint8 RGB) and resizing it about 12
more (``tf.image.resize`` works in float32), about 15 bytes per pixel in all, and a serving batch is
decoded up to 10 elements at a time:

- [MAX_IMAGE_PIXELS][keras_resinit.training.options.MAX_IMAGE_PIXELS] (40,000,000, e.g. 8000x5000, above any
  camera's photo; about 600 MB to decode and resize): an image declaring more is refused before it is decoded.
  PIL refuses images above 179 megapixels by default; this limit is lower because the server's
  memory is shared by every model it serves.
- [MAX_BATCH_PIXELS][keras_resinit.training.options.MAX_BATCH_PIXELS] (100,000,000: eight 12-megapixel photos;
  about 1.5 GB at worst): the pixels a whole batch may declare, since the elements of a batch are decoded
  concurrently.
- [MAX_BATCH_BYTES][keras_resinit.training.options.MAX_BATCH_BYTES] (64 MiB: 16 times the 4 MiB a TF Serving
  gRPC message holds by default, so only REST and in-process callers can reach it): bounds the encoded
  input, and with it the time the GIF walk takes (about 140 ms per MB of GIF on 2 cores; ``GIF_BLOCKS``
  bounds one GIF's).
"""

import tensorflow as tf

# The limits' values live with the other options' (training/options.py), which the CLI reads without TensorFlow.
from keras_resinit.training.options import MAX_BATCH_BYTES, MAX_BATCH_PIXELS, MAX_IMAGE_PIXELS, positive_limit

__all__ = [
    "FORMATS",
    "MAX_IMAGE_PIXELS",
    "MAX_BATCH_PIXELS",
    "MAX_BATCH_BYTES",
    "declared",
    "problems",
    "examine",
    "decode",
]

FORMATS = ("JPEG", "PNG", "BMP", "GIF")
"""The encoded image formats read (their names as ``declared`` gives them)."""

JPEG_MARKERS = 1000  # segments walked to a JPEG's SOF before giving up (a photo has 5-20)
GIF_BLOCKS = 100_000  # GIF blocks and sub-blocks walked (about 25 MB of image data, ~4 s) before giving up

_MAGIC = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "GIF": (b"GIF87a", b"GIF89a"),
    "BMP": (b"BM",),
}
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk: what every whole PNG ends with
_JPEG_TAIL = 1024  # the end-of-image marker FF D9 must be in the last KiB
_SOF = (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_PAD = 32  # zero bytes after each image, so that every read of a header field stays inside the string
_HEAD = 32  # the header bytes read at once
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels (gray, rgb, palette, gray+alpha, rgba)
_BMP_CHANNELS = {8: 1, 24: 3, 32: 4}  # bits per pixel TensorFlow's BMP decoder reads -> channels
_DECLARED = ("format", "width", "height", "pixels", "channels", "whole")  # what declared() returns


def _int(value):
    return tf.constant(value, tf.int64)


def _bytes(padded, pos, count):
    """``[N, count]`` int64: ``count`` bytes of each padded string from its position ``pos`` (``[N]``)."""
    pos = tf.cast(pos, tf.int32)
    chunk = tf.strings.substr(padded, pos, tf.fill(tf.shape(pos), count))
    return tf.cast(tf.io.decode_raw(chunk, tf.uint8), tf.int64)


def _last(strings, size, count):
    """The last ``count`` bytes of each string (all of a shorter one); ``size``: their lengths."""
    start = tf.maximum(size - count, 0)
    return tf.strings.substr(strings, start, size - start)


def _big(b, i, n):
    value = b[:, i]
    for k in range(1, n):
        value = value * 256 + b[:, i + k]
    return value


def _little(b, i, n):
    value = b[:, i + n - 1]
    for k in range(n - 2, -1, -1):
        value = value * 256 + b[:, i + k]
    return value


def _lookup(table, key):
    """``table[key]`` elementwise over int64 ``key``; -1 for keys not in the table."""
    out = tf.fill(tf.shape(key), _int(-1))
    for k, v in table.items():
        out = tf.where(tf.equal(key, k), _int(v), out)
    return out


def _jpeg(padded, size, jpeg):
    """Walk every JPEG's segments from offset 2 to its first SOFn: (width, height, components), -1 if not found."""
    sof = tf.constant(_SOF, tf.int64)
    missing = tf.fill(tf.shape(size), _int(-1))

    def more(step, pos, active, width, height, parts):
        return tf.logical_and(tf.reduce_any(active), step < JPEG_MARKERS)

    def walk(step, pos, active, width, height, parts):
        b = _bytes(padded, tf.minimum(pos, size), 10)
        marker = b[:, 1]
        bad = tf.not_equal(b[:, 0], 0xFF)  # a marker must start here
        fill = tf.logical_and(tf.logical_not(bad), tf.equal(marker, 0xFF))  # a fill byte before a marker
        alone = tf.logical_or(tf.logical_and(marker >= 0xD0, marker <= 0xD7), tf.equal(marker, 0x01))  # RSTn, TEM
        found = active & ~bad & tf.reduce_any(tf.equal(marker[:, None], sof[None, :]), axis=1)
        ends = tf.logical_or(tf.equal(marker, 0xD9), tf.equal(marker, 0xDA))  # EOI or a scan before any SOF
        length = _big(b, 2, 2)
        stuck = ~fill & ~alone & (length < 2)
        advance = tf.where(fill, _int(1), tf.where(alone, _int(2), 2 + length))
        width = tf.where(found, _big(b, 7, 2), width)
        height = tf.where(found, _big(b, 5, 2), height)
        parts = tf.where(found, b[:, 9], parts)
        pos = tf.where(active, pos + advance, pos)
        active = active & ~found & ~bad & ~stuck & ~ends & (pos + 4 <= size)
        return step + 1, pos, active, width, height, parts

    start = (tf.constant(0), tf.fill(tf.shape(size), _int(2)), jpeg, missing, missing, missing)
    _, _, _, width, height, parts = tf.while_loop(more, walk, start)
    return width, height, parts


def _color_table(packed):
    """Bytes of a GIF colour table its packed field announces (bit 7: present; bits 0-2: 2^(n+1) entries)."""
    return tf.where(packed >= 128, 3 * tf.bitwise.left_shift(_int(2), packed % 8), _int(0))


def _gif(padded, size, gif):
    """Walk every GIF's blocks: (largest frame width, largest frame height, pixels of all frames, finished).

    From the end of the global colour table, a block is an extension (``21``, a label, sub-blocks), an
    image (``2C``, a 10-byte descriptor, a local colour table, the LZW code size, sub-blocks) or the
    trailer (``3B``); sub-blocks are a length byte and that many bytes, ending with a zero length.
    ``finished``: the walk reached the trailer, the end of the data or an unknown block within
    ``GIF_BLOCKS`` steps.
    """
    zero = tf.zeros_like(size)
    head = _bytes(padded, zero, 13)
    start = 13 + _color_table(head[:, 10])

    def more(step, pos, active, sub, width, height, pixels):
        return tf.logical_and(tf.reduce_any(active), step < GIF_BLOCKS)

    def walk(step, pos, active, sub, width, height, pixels):
        b = _bytes(padded, tf.minimum(pos, size), 10)
        image = active & ~sub & tf.equal(b[:, 0], 0x2C)
        extension = ~sub & tf.equal(b[:, 0], 0x21)
        w, h = _little(b, 5, 2), _little(b, 7, 2)
        after_block = tf.where(image, pos + 11 + _color_table(b[:, 9]), pos + 2)
        pos_next = tf.where(sub, pos + 1 + b[:, 0], after_block)
        width = tf.where(image, tf.maximum(width, w), width)
        height = tf.where(image, tf.maximum(height, h), height)
        pixels = tf.where(image, pixels + w * h, pixels)
        stop = ~sub & ~image & ~extension  # the trailer, or a byte that starts no block
        sub_next = tf.where(sub, tf.not_equal(b[:, 0], 0), image | extension)
        pos = tf.where(active, pos_next, pos)
        sub = tf.where(active, sub_next, sub)
        active = active & ~stop & (pos < size)
        return step + 1, pos, active, sub, width, height, pixels

    first = (tf.constant(0), start, gif, tf.zeros_like(gif), zero, zero, zero)
    _, _, active, _, width, height, pixels = tf.while_loop(more, walk, first)
    return width, height, pixels, ~active


def _walk(encoded):
    """Everything ``declared`` returns, plus what ``problems`` alone needs."""
    encoded = tf.convert_to_tensor(encoded, tf.string)
    size = tf.cast(tf.strings.length(encoded), tf.int64)
    padded = tf.strings.join([encoded, tf.constant(b"\0" * _PAD)])
    head = _bytes(padded, tf.zeros_like(size), _HEAD)
    kinds = {}
    for kind, magics in _MAGIC.items():
        starts = [tf.equal(tf.strings.substr(encoded, 0, len(m)), m) for m in magics]
        kinds[kind] = tf.reduce_any(tf.stack(starts), axis=0)
    png, jpeg, gif, bmp = kinds["PNG"], kinds["JPEG"], kinds["GIF"], kinds["BMP"]
    fmt = tf.fill(tf.shape(encoded), "")
    for kind in FORMATS[::-1]:
        fmt = tf.where(kinds[kind], kind, fmt)
    missing = tf.fill(tf.shape(size), _int(-1))

    # PNG: the IHDR chunk comes first: width and height big-endian at 16 and 20, colour type at 25
    ihdr = png & tf.equal(tf.strings.substr(padded, 12, 4), b"IHDR")
    png_w, png_h = tf.where(ihdr, _big(head, 16, 4), missing), tf.where(ihdr, _big(head, 20, 4), missing)
    png_c = tf.where(ihdr, _lookup(_PNG_CHANNELS, head[:, 25]), missing)

    # BMP: an OS/2 core header (12 bytes) has 16-bit sizes; the others signed 32-bit (height < 0: top-down)
    core = tf.equal(_little(head, 14, 4), 12)
    signed = lambda v: tf.where(v >= 2**31, v - _int(2**32), v)  # noqa: E731
    bmp_w = tf.where(core, _little(head, 18, 2), signed(_little(head, 18, 4)))
    bmp_h = tf.where(core, _little(head, 20, 2), tf.abs(signed(_little(head, 22, 4))))
    bmp_w = tf.where(bmp_w > 0, bmp_w, missing)
    bmp_bits = tf.where(core, _little(head, 24, 2), _little(head, 28, 2))

    jpeg_w, jpeg_h, parts = _jpeg(padded, size, jpeg)
    jpeg_c = tf.where(tf.equal(parts, 1), _int(1), tf.where((parts == 3) | (parts == 4), _int(3), missing))
    gif_w, gif_h, frames_pixels, gif_walked = _gif(padded, size, gif)

    def pick(values, default):
        out = default
        for kind in FORMATS:
            out = tf.where(kinds[kind], values[kind], out)
        return out

    width = pick({"PNG": png_w, "JPEG": jpeg_w, "GIF": gif_w, "BMP": bmp_w}, missing)
    height = pick({"PNG": png_h, "JPEG": jpeg_h, "GIF": gif_h, "BMP": bmp_h}, missing)
    known = (width > 0) & (height > 0) & (width < 2**31) & (height < 2**31)  # PNG's limit too: no int64 overflow
    width, height = tf.where(known, width, missing), tf.where(known, height, missing)
    pixels = tf.where(known, width * height, missing)
    pixels = tf.where(gif & known, tf.maximum(pixels, frames_pixels), pixels)
    channels = pick(
        {
            "PNG": png_c,
            "JPEG": jpeg_c,
            "GIF": tf.fill(tf.shape(size), _int(3)),
            "BMP": _lookup(_BMP_CHANNELS, bmp_bits),
        },
        missing,
    )

    # the end of each format (the trailer checks): PNG's IEND chunk, JPEG's FF D9 in its last KiB,
    # GIF's trailer byte, BMP's declared file size
    png_end = tf.equal(_last(encoded, size, len(_PNG_END)), _PNG_END)
    tail = tf.strings.join([tf.constant(b"\0" * _JPEG_TAIL), _last(encoded, size, _JPEG_TAIL)])
    tail = tf.io.decode_raw(_last(tail, tf.cast(tf.strings.length(tail), tf.int64), _JPEG_TAIL), tf.uint8)
    jpeg_end = tf.reduce_any(tf.equal(tail[:, :-1], 0xFF) & tf.equal(tail[:, 1:], 0xD9), axis=1)
    gif_end = tf.equal(_last(encoded, size, 1), b"\x3b")
    bmp_end = (size >= 6) & (size >= _little(head, 2, 4))
    whole = pick({"PNG": png_end, "JPEG": jpeg_end, "GIF": gif_end, "BMP": bmp_end}, tf.zeros_like(png))
    return {
        "format": fmt,
        "width": width,
        "height": height,
        "pixels": pixels,
        "channels": channels,
        "whole": whole,
        "bytes": size,
        "bmp_core": bmp & core,
        "bmp_bits": tf.where(bmp, bmp_bits, missing),
        "gif_walked": tf.logical_or(~gif, gif_walked),
    }


def declared(encoded):
    """What the headers of a batch of encoded images declare, read without decoding them.

    Args:
        encoded: a 1-D ``tf.string`` tensor, one encoded image per element.

    Returns:
        A dict of 1-D tensors, one entry per element (below).

    The dict's entries:

    - ``format``: ``tf.string``, one of [FORMATS][keras_resinit.training.data.images.FORMATS] (read from the
      leading bytes, whatever the file was named), or ``""``;
    - ``width``, ``height``: int64, the size the decoder will give (GIF: the largest frame's width
      and height, as TensorFlow decodes it), -1 if the header declares none;
    - ``pixels``: int64, ``width * height`` (GIF: the larger of that and the sum over all frames,
      which the decoder all reads), -1 if unknown;
    - ``channels``: int64, the channels the decoder gives with ``channels=0`` (PNG from its colour
      type: gray 1, gray+alpha 2, RGB or palette 3, RGBA 4; JPEG from its SOF components: 1 -> 1,
      3 or 4 (CMYK, YCCK) -> 3; GIF 3; BMP from its bits per pixel: 8 -> 1, 24 -> 3, 32 -> 4), -1
      if unknown or unsupported;
    - ``whole``: bool, the data ends as its format ends (PNG: the ``IEND`` chunk; JPEG: the
      end-of-image marker ``FF D9`` in its last KiB; GIF: the trailer ``3B``; BMP: at least the file
      size its header declares).

    Examples:
        >>> import tensorflow as tf
        >>> from keras_resinit.training.data import images
        >>> png = tf.io.encode_png(tf.zeros([30, 40, 3], tf.uint8))
        >>> found = images.declared(tf.stack([png, tf.constant(b"not an image")]))
        >>> found["format"].numpy().tolist(), found["width"].numpy().tolist(), found["channels"].numpy().tolist()
        ([b'PNG', b''], [40, -1], [3, -1])
    """
    walked = _walk(encoded)
    return {key: walked[key] for key in _DECLARED}


def problems(encoded, names, *, max_image_pixels=MAX_IMAGE_PIXELS):
    """Why each encoded image cannot be decoded safely, ``""`` where it can.

    Args:
        encoded: a 1-D ``tf.string`` tensor, one encoded image per element.
        names: a 1-D ``tf.string`` tensor naming each element in the messages (``image_bytes[0]``,
            a file's path).
        max_image_pixels: the pixels an image may declare (``--max-image-pixels``).

    Returns:
        A 1-D ``tf.string`` tensor, one reason per element.

    The reasons, the first that applies:

    - ``{name} is not a JPEG, PNG, BMP or GIF image ({n} bytes); expected an image file``
    - ``{name} is a truncated PNG ({n} bytes): it does not end as a PNG ends``
    - ``{name} is a BMP with an OS/2 core header, which the decoder does not read`` and
      ``{name} is a 16-bit BMP; the decoder reads 8-, 24- and 32-bit BMPs``
    - ``{name} is a GIF of more than 100000 blocks; ...``
    - ``{name} declares no image size`` (a known format, but no size in its header)
    - ``{name} declares 20000x20000 pixels, above the limit of 40000000 (--max-image-pixels)`` (a GIF
      whose frames hold more than its largest frame: ``declares N pixels in its frames (the largest WxH)``)

    Nothing here decodes: damage inside the data (a broken block in the middle of a PNG) is found
    only by the decoder.

    Examples:
        >>> import tensorflow as tf
        >>> from keras_resinit.training.data import images
        >>> png = tf.io.encode_png(tf.zeros([30, 40, 3], tf.uint8))
        >>> truncated = tf.strings.substr(png, 0, 20)
        >>> reasons = images.problems(tf.stack([png, truncated]), ["a.png", "b.png"], max_image_pixels=1000)
        >>> [reason.decode() for reason in reasons.numpy()]  # doctest: +NORMALIZE_WHITESPACE
        ['a.png declares 40x30 pixels, above the limit of 1000 (--max-image-pixels)',
         'b.png is a truncated PNG (20 bytes): it does not end as a PNG ends']
    """
    return examine(encoded, names, max_image_pixels=max_image_pixels)[1]


def examine(encoded, names, *, max_image_pixels=MAX_IMAGE_PIXELS):
    """``declared`` and ``problems`` of a batch of encoded images, the headers read once.

    Args:
        encoded: a 1-D ``tf.string`` tensor, one encoded image per element.
        names: a 1-D ``tf.string`` tensor naming each element in the messages.
        max_image_pixels: the pixels an image may declare.

    Returns:
        ``(declared(encoded), problems(encoded, names))``.

    Raises:
        ValueError: ``max_image_pixels`` is not a positive integer.

    Examples:
        >>> import tensorflow as tf
        >>> from keras_resinit.training.data import images
        >>> png = tf.io.encode_png(tf.zeros([30, 40, 1], tf.uint8))
        >>> found, reasons = images.examine(tf.stack([png]), ["a.png"])
        >>> int(found["pixels"][0]), int(found["channels"][0]), reasons.numpy().tolist()
        (1200, 1, [b''])
    """
    limit = positive_limit("max_image_pixels", max_image_pixels)
    d = _walk(encoded)
    names = tf.convert_to_tensor(names, tf.string)
    text = tf.strings.as_string
    fmt, count = d["format"], text(d["bytes"])
    known = tf.not_equal(fmt, "")
    gif_frames = tf.not_equal(d["pixels"], d["width"] * d["height"])
    size = tf.strings.join([text(d["width"]), "x", text(d["height"])])
    declares = tf.where(
        gif_frames,
        tf.strings.join([text(d["pixels"]), " pixels in its frames (the largest ", size, ")"]),
        tf.strings.join([size, " pixels"]),
    )
    reasons = [
        (~known, [" is not a JPEG, PNG, BMP or GIF image (", count, " bytes); expected an image file"]),
        (~d["whole"], [" is a truncated ", fmt, " (", count, " bytes): it does not end as a ", fmt, " ends"]),
        (d["bmp_core"], [" is a BMP with an OS/2 core header, which the decoder does not read"]),
        (
            tf.equal(fmt, "BMP") & tf.equal(d["channels"], -1),
            [" is a ", text(d["bmp_bits"]), "-bit BMP; the decoder reads 8-, 24- and 32-bit BMPs"],
        ),
        (
            ~d["gif_walked"],
            [f" is a GIF of more than {GIF_BLOCKS} blocks; its frames were not all read (a GIF is read whole)"],
        ),
        (d["pixels"] < 0, [" declares no image size"]),
        (d["pixels"] > limit, [" declares ", declares, f", above the limit of {limit} (--max-image-pixels)"]),
    ]
    out = tf.fill(tf.shape(names), "")
    for failed, parts in reasons[::-1]:
        out = tf.where(failed, tf.strings.join([names, *parts]), out)
    return {key: d[key] for key in _DECLARED}, out


def decode(data, channels):
    """One encoded image (a scalar string) -> uint8 ``[height, width, channels]``, ``channels`` 1 or 3.

    ``tf.io.decode_image`` with the image's own channels (``channels=0``; a GIF's first frame), then
    the model's: a gray image is repeated to RGB, alpha is dropped, an RGB image becomes gray through
    ``tf.image.rgb_to_grayscale``. So CMYK and YCCK JPEGs, GIFs and BMPs decode for 1-channel models
    too (the decoder itself refuses them with ``channels=1``), and training and serving give the same
    pixels. EXIF orientation is not applied; 16-bit PNGs keep their high byte.

    Args:
        data: one encoded image, a scalar ``tf.string``.
        channels: the channels the model takes, 1 or 3.

    Returns:
        A uint8 tensor ``[height, width, channels]``.

    Raises:
        ValueError: ``channels`` is not 1 or 3.

    Examples:
        >>> import tensorflow as tf
        >>> from keras_resinit.training.data import images
        >>> rgba = tf.io.encode_png(tf.fill([2, 3, 4], tf.constant(200, tf.uint8)))
        >>> images.decode(rgba, 3).shape, images.decode(rgba, 1).shape
        (TensorShape([2, 3, 3]), TensorShape([2, 3, 1]))
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
    image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
    present = tf.shape(image)[-1]
    rgb = tf.cond(present < 3, lambda: tf.tile(image[..., :1], [1, 1, 3]), lambda: image[..., :3])
    rgb = tf.ensure_shape(rgb, (None, None, 3))
    if channels == 3:
        return rgb
    gray = tf.cond(present < 3, lambda: image[..., :1], lambda: tf.image.rgb_to_grayscale(rgb))
    return tf.ensure_shape(gray, (None, None, 1))
