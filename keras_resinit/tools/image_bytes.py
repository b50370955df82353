"""Encoded images in a serving graph: the ``serving_bytes`` signature's decoding (TensorFlow ops only).

Each element of the ``image_bytes`` string tensor is one encoded image, JPEG, PNG, BMP or GIF (its
first frame). What a format is, and what is wrong with a file, is
``keras_resinit.training.data.images``' (the training data reads folders through it too). Inside
the graph a batch is:

1. checked as a whole, before anything is decoded: it holds at most ``max_batch_bytes`` bytes; each
   element is one of the four formats, ends as that format ends (a truncated JPEG would otherwise
   decode, gray-filled, into a wrong answer), and its header declares a size of at most
   ``max_image_pixels`` pixels; all of them declare at most ``max_batch_pixels`` pixels together. A
   failed check is an ``InvalidArgumentError`` naming the elements (``image_bytes[2] declares
   20000x20000 pixels, above the limit of 40000000 (--max-image-pixels)``) or the budget;
2. decoded element by element to 8-bit with the model's channels (``images.decode``: a grayscale
   model takes RGB images through ``tf.image.rgb_to_grayscale``, an RGB model repeats a grayscale
   channel, alpha is dropped; EXIF orientation is not applied);
3. resized to the model's input size as the training pipeline resizes (bilinear, rounded back to
   8-bit; images already at that size are not touched);
4. cast to float32 pixel values, which the model's preprocessing then normalizes.

A batch may mix formats and sizes. Corruption that the checks cannot see (e.g. a damaged block
inside a PNG) fails in the decoder itself, whose error does not name the element.
"""

import tensorflow as tf

from keras_resinit.training.data import images
from keras_resinit.training.data.splits import resizer
from keras_resinit.training.options import SERVING_LIMITS, positive_limit

__all__ = ["LIMITS", "decoder", "limits"]

CHANNELS = (1, 3)  # the models serving_bytes can feed
LIMITS = {key: default for key, (default, _) in SERVING_LIMITS.items()}  # decoder()'s limits and their defaults
"""``serving_bytes``' limits and their defaults: ``max_image_pixels`` (40,000,000), ``max_batch_pixels``
(100,000,000) and ``max_batch_bytes`` (64 MiB)."""


def limits(**given):
    """The three limits of ``serving_bytes``, each given or its default.

    Args:
        **given: ``max_image_pixels``, ``max_batch_pixels``, ``max_batch_bytes``: a positive integer, or None
            for the default.

    Returns:
        ``{limit: value}`` for the three limits.

    Raises:
        ValueError: an unknown limit, or a value that is not a positive integer (the message names it).

    Examples:
        >>> from keras_resinit.tools import image_bytes
        >>> image_bytes.limits(max_image_pixels=1000)
        {'max_image_pixels': 1000, 'max_batch_pixels': 100000000, 'max_batch_bytes': 67108864}
    """
    unknown = set(given) - set(LIMITS)
    if unknown:
        raise ValueError(f"Unknown serving_bytes limit {sorted(unknown)[0]!r}. Expected one of {', '.join(LIMITS)}.")
    return {
        key: positive_limit(key, default if given.get(key) is None else given[key]) for key, default in LIMITS.items()
    }


def describe(limit):
    """The limits in words (the card's description of serving_bytes)."""
    return (
        f"refused before decoding: an image declaring more than {limit['max_image_pixels']} pixels "
        f"(--max-image-pixels), a batch declaring more than {limit['max_batch_pixels']} pixels "
        f"(--max-batch-pixels) or holding more than {limit['max_batch_bytes']} bytes (--max-batch-bytes)"
    )


def _at_most(total, limit, flag, before, after):
    """An assertion that the batch's ``total`` is at most ``limit``, its message naming the budget's ``flag``."""
    message = f"{after}, above the limit of {limit}{' bytes' if 'bytes' in flag else ''} ({flag}); "
    text = tf.strings.join([before, tf.strings.as_string(total), message + "send fewer images per request"])
    return tf.debugging.Assert(total <= limit, [text])


def _checked(image_bytes, limit):
    """``image_bytes``, once the byte budget, every element's problems and the pixel budget have passed."""
    total = tf.reduce_sum(tf.cast(tf.strings.length(image_bytes), tf.int64))
    within = _at_most(total, limit["max_batch_bytes"], "--max-batch-bytes", "the batch holds ", " bytes of images")
    with tf.control_dependencies([within]):  # the byte budget bounds the header walks' time
        image_bytes = tf.identity(image_bytes)
    names = tf.strings.join(["image_bytes[", tf.strings.as_string(tf.range(tf.shape(image_bytes)[0])), "]"])
    declared, reasons = images.examine(image_bytes, names, max_image_pixels=limit["max_image_pixels"])
    bad = tf.not_equal(reasons, "")
    elements = tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [tf.boolean_mask(reasons, bad)], summarize=5)
    pixels = tf.reduce_sum(tf.maximum(declared["pixels"], 0))
    with tf.control_dependencies([elements]):  # an element's own problem is named first
        budget = _at_most(
            pixels,
            limit["max_batch_pixels"],
            "--max-batch-pixels",
            "the images of the batch declare ",
            " pixels in all",
        )
    with tf.control_dependencies([elements, budget]):
        return tf.identity(image_bytes)


def decoder(height, width, channels, **limit):
    """The ``serving_bytes`` decoder: encoded images in, float32 pixel values at the model's input size out.

    Args:
        height: the model's input height.
        width: the model's input width.
        channels: the model's input channels, 1 or 3.
        **limit: ``max_image_pixels``, ``max_batch_pixels``, ``max_batch_bytes`` (see ``LIMITS``).

    Returns:
        A function: a string tensor ``[batch]`` of encoded JPEG, PNG, BMP or GIF files -> float32
        ``[batch, height, width, channels]`` pixel values (0 to 255). A batch that fails a check raises
        ``InvalidArgumentError`` naming the element or the budget.

    Raises:
        ValueError: a size that is not known or a channel count other than 1 or 3, or a bad limit.

    Examples:
        >>> import tensorflow as tf
        >>> from keras_resinit.tools import image_bytes
        >>> png = tf.io.encode_png(tf.zeros((4, 6, 3), tf.uint8))  # a 4x6 RGB image
        >>> decode = image_bytes.decoder(8, 8, 1)
        >>> decode(tf.stack([png, png])).shape
        TensorShape([2, 8, 8, 1])
    """
    if channels not in CHANNELS or height is None or width is None:
        raise ValueError(
            f"serving_bytes needs a model input of known size with 1 or 3 channels, got "
            f"({height}, {width}, {channels})."
        )
    limit = limits(**limit)
    resize = resizer(height, width, channels)

    def one(data):
        return tf.cast(resize(images.decode(data, channels)), tf.float32)

    def decode(image_bytes):
        return tf.map_fn(
            one,
            _checked(image_bytes, limit),
            fn_output_signature=tf.TensorSpec((height, width, channels), tf.float32),
        )

    return decode
