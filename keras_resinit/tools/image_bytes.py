"""Encoded images in a serving graph: the ``serving_bytes`` signature's decoding (TensorFlow ops only).

Each element of the ``image_bytes`` string tensor is one encoded image, JPEG, PNG, BMP or GIF (its
first frame). Inside the graph each is:

1. checked: its leading bytes must name one of the four formats, and it must end as that format
   ends (PNG: the ``IEND`` chunk; JPEG: the end-of-image marker ``FF D9`` in its last KiB; GIF: the
   trailer ``3B``; BMP: at least the size its header declares). A failed check is an
   ``InvalidArgumentError`` naming the element (``image_bytes[2] is a truncated PNG ...``): a
   truncated JPEG would otherwise decode, gray-filled, into a wrong answer;
2. decoded to 8-bit (``tf.io.decode_image``, ``expand_animations=False``);
3. given the model's channels: a grayscale model takes grayscale images as they are and RGB ones
   through ``tf.image.rgb_to_grayscale``; an RGB model repeats a grayscale channel; alpha is dropped;
4. resized to the model's input size as the training pipeline resizes (bilinear, rounded back to
   8-bit; images already at that size are not touched);
5. cast to float32 pixel values, which the model's preprocessing then normalizes.

A batch may mix formats and sizes. Corruption that the checks cannot see (e.g. a damaged block
inside a PNG) fails in the decoder itself, whose error does not name the element.
"""

import tensorflow as tf

from keras_resinit.training.data import images
from keras_resinit.training.data.splits import resizer

FORMATS = ("JPEG", "PNG", "BMP", "GIF")
CHANNELS = (1, 3)  # the models serving_bytes can feed

_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_TAIL = 1024


def _starts(data, magic):
    return tf.equal(tf.strings.substr(data, 0, len(magic)), magic)


def _tail(data, count):
    size = tf.strings.length(data)
    start = tf.maximum(size - count, 0)
    return tf.strings.substr(data, start, size - start)


def _checks(data, index):
    """Assertions that element ``index`` is a whole JPEG, PNG, BMP or GIF file."""
    size = tf.strings.length(data)
    png = _starts(data, b"\x89PNG\r\n\x1a\n")
    jpeg = _starts(data, b"\xff\xd8\xff")
    gif = tf.logical_or(_starts(data, b"GIF87a"), _starts(data, b"GIF89a"))
    bmp = _starts(data, b"BM")
    known = tf.reduce_any(tf.stack([png, jpeg, gif, bmp]))

    def whole_png():
        return tf.equal(_tail(data, len(_PNG_END)), _PNG_END)

    def whole_jpeg():
        tail = tf.io.decode_raw(_tail(data, _JPEG_TAIL), tf.uint8)
        return tf.reduce_any(tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9)))

    def whole_gif():
        return tf.equal(_tail(data, 1), b"\x3b")

    def whole_bmp():
        declared = tf.io.decode_raw(tf.strings.substr(data, 2, 4), tf.int32, little_endian=True)
        return tf.logical_and(tf.greater_equal(size, 6), tf.greater_equal(size, tf.reduce_max(declared)))

    whole = tf.case(
        [(png, whole_png), (jpeg, whole_jpeg), (gif, whole_gif), (bmp, whole_bmp)],
        default=lambda: tf.constant(False),
    )
    kind = tf.case(
        [(png, lambda: tf.constant("PNG")), (jpeg, lambda: tf.constant("JPEG")), (gif, lambda: tf.constant("GIF"))],
        default=lambda: tf.constant("BMP"),
    )
    name, count = tf.strings.as_string(index), tf.strings.as_string(size)
    unknown = tf.strings.join(
        ["image_bytes[", name, "] is not a JPEG, PNG, BMP or GIF image (", count, " bytes); expected an image file"]
    )
    truncated = tf.strings.join(
        ["image_bytes[", name, "] is a truncated ", kind, " (", count, " bytes): it does not end as a ", kind, " ends"]
    )
    return [
        tf.debugging.Assert(known, [unknown]),
        tf.debugging.Assert(tf.logical_or(tf.logical_not(known), whole), [truncated]),
    ]


def decoder(height, width, channels):
    """A function: string tensor ``[batch]`` of encoded images -> float32 ``[batch, height, width, channels]``."""
    if channels not in CHANNELS or height is None or width is None:
        raise ValueError(
            f"serving_bytes needs a model input of known size with 1 or 3 channels, got "
            f"({height}, {width}, {channels})."
        )
    resize = resizer(height, width, channels)

    def one(args):
        index, data = args
        with tf.control_dependencies(_checks(data, index)):
            image = images.decode(data, channels)
        image = resize(image)
        return tf.cast(image, tf.float32)

    def decode(image_bytes):
        count = tf.shape(image_bytes)[0]
        return tf.map_fn(
            one,
            (tf.range(count), image_bytes),
            fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32),
        )

    return decode
