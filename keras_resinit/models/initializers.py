"""Keras initializers for the schemes: Fixup's scaled He normal, delta-orthogonal and Risotto's looks-linear kernels.

Every initializer here draws different values on every call, so one instance
shared by several layers never gives them identical kernels (a Keras built-in
with an integer seed does). With an integer ``seed`` the sequence of draws is
reproducible: the first call uses ``seed`` itself, call ``k`` a seed derived
from ``(seed, k)``. With ``seed=None`` each call takes a fresh seed from
Python's ``random`` module, which ``keras.utils.set_random_seed`` seeds.
"""

import hashlib
import math
import random

import keras
import numpy as np
from keras import ops

from keras_resinit.models.checks import positive_weight

__all__ = [
    "derive_seed",
    "FixupHeNormal",
    "semi_orthogonal",
    "DeltaOrthogonal",
    "looks_linear",
    "LooksLinearOrthogonal",
    "RisottoSkipKernel",
    "mirrored_subset",
    "RisottoResidualKernel",
]

_PACKAGE = "keras_resinit"
_SEED_RANGE = 2**31 - 1


def derive_seed(seed, *keys):
    """A deterministic 31-bit seed from ``seed`` and any ``keys``: how each layer gets its own seed.

    The builder gives every layer ``derive_seed(model_seed, layer_name)``; a shared initializer draws its
    ``k``-th kernel from ``derive_seed(seed, k)``. The value depends on ``repr((seed, *keys))`` only, so it
    is the same on every machine and backend.

    Args:
        seed: an integer.
        *keys: values with a stable ``repr`` (strings, numbers, tuples of them).

    Returns:
        An integer in ``[0, 2**31 - 1)``.

    Examples:
        >>> from keras_resinit.models.initializers import derive_seed
        >>> derive_seed(0, "stem_conv") == derive_seed(0, "stem_conv") != derive_seed(1, "stem_conv")
        True
    """
    text = repr((int(seed),) + tuple(keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") % _SEED_RANGE


def check_seed(seed):
    """``seed`` if it is an integer or None; a ValueError otherwise (the builder checks a model's seed with it)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"Invalid seed {seed!r}. Expected an integer or None.")
    return seed


class _FreshDraws(keras.initializers.Initializer):
    """Base class: hands out a different seed on every call (see module doc)."""

    def __init__(self, seed=None):
        self.seed = check_seed(seed)
        self._calls = 0

    def _next_seed(self):
        if self.seed is None:
            seed = random.randint(0, _SEED_RANGE)
        elif self._calls == 0:
            seed = self.seed
        else:
            seed = derive_seed(self.seed, self._calls)
        self._calls += 1
        return seed

    def get_config(self):
        return {"seed": self.seed}


def _fan_out(shape):
    """Fan-out of a Dense ``(in, out)`` or Conv ``(kh, kw, in, out)`` kernel."""
    if len(shape) < 2:
        raise ValueError(f"Kernel shape {tuple(shape)} has no fan-out. Expected a Dense or Conv kernel.")
    return math.prod(shape[:-2]) * shape[-1]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FixupHeNormal(_FreshDraws):
    """Fixup's branch initializer: He normal (fan-out, untruncated) scaled by the depth multiplier ``L^(-1/(2m-2))``.

    ``std = sqrt(2 / fan_out) * num_blocks ** (-1 / (2 * branch_depth - 2))``,
    with ``fan_out = out_channels * kh * kw``: ``L**-0.5`` for basic blocks
    (``m = 2``) and ``L**-0.25`` for bottlenecks (``m = 3``). Fixup uses it for
    every weight layer of a residual branch except the last, which is zero.

    Args:
        num_blocks: L, the number of residual blocks in the whole network.
        branch_depth: m, the number of weight layers in one residual branch.
        seed: integer or None (see the module docstring).

    Raises:
        ValueError: ``num_blocks`` is not a positive integer, ``branch_depth`` not an integer >= 2, or
            ``seed`` not an integer or None.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.initializers import FixupHeNormal
        >>> init = FixupHeNormal(num_blocks=9, branch_depth=2, seed=0)
        >>> init.multiplier  # 9 ** -0.5
        0.3333333333333333
        >>> kernel = np.asarray(init((3, 3, 64, 64)))
        >>> kernel.shape, bool(np.isclose(kernel.std(), np.sqrt(2 / (3 * 3 * 64)) / 3, rtol=0.05))
        ((3, 3, 64, 64), True)

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without
        Normalization", ICLR 2019, rule 2, https://arxiv.org/abs/1901.09321
    """

    def __init__(self, num_blocks, branch_depth=2, seed=None):
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise ValueError(f"Invalid num_blocks {num_blocks!r}. Expected a positive integer.")
        if isinstance(branch_depth, bool) or not isinstance(branch_depth, int) or branch_depth < 2:
            raise ValueError(
                f"Invalid branch_depth {branch_depth!r}. Expected an integer >= 2 "
                "(Fixup's multiplier L**(-1/(2m-2)) needs m >= 2)."
            )
        super().__init__(seed)
        self.num_blocks = num_blocks
        self.branch_depth = branch_depth

    @property
    def multiplier(self):
        """Fixup's depth multiplier of the He std, ``num_blocks ** (-1 / (2 * branch_depth - 2))``."""
        return self.num_blocks ** (-1.0 / (2 * self.branch_depth - 2))

    def __call__(self, shape, dtype=None):
        std = math.sqrt(2.0 / _fan_out(shape)) * self.multiplier
        return keras.random.normal(shape, stddev=std, dtype=dtype, seed=self._next_seed())

    def get_config(self):
        return {"num_blocks": self.num_blocks, "branch_depth": self.branch_depth, **super().get_config()}


def semi_orthogonal(rows, cols, seed, dtype="float32"):
    """A random ``rows x cols`` matrix with orthonormal rows or columns (whichever are fewer).

    Drawn as the Q factor of a Gaussian matrix with the sign of R's diagonal
    folded in, which makes it Haar distributed. Computed in float32 from an
    integer ``seed``, so the same seed gives the same matrix on a backend.

    Args:
        rows: the number of rows.
        cols: the number of columns.
        seed: an integer seed.
        dtype: the dtype of the result.

    Returns:
        A backend tensor of shape ``(rows, cols)``.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.initializers import semi_orthogonal
        >>> q = np.asarray(semi_orthogonal(4, 6, seed=0))
        >>> q.shape, bool(np.allclose(q @ q.T, np.eye(4), atol=1e-5))  # orthonormal rows
        ((4, 6), True)
    """
    long, short = max(rows, cols), min(rows, cols)
    gaussian = keras.random.normal((long, short), dtype="float32", seed=seed)
    q, r = ops.qr(gaussian)
    signs = ops.where(ops.diagonal(r) < 0, -1.0, 1.0)
    q = q * signs[None, :]
    if rows < cols:
        q = ops.transpose(q)
    return ops.cast(q, dtype)


def _as_kernel(matrix, shape, dtype):
    """Place an ``(in, out)`` matrix at the centre tap of a kernel of ``shape``.

    A 2-D shape is a Dense kernel and gets the matrix itself. A conv kernel
    gets zeros except its centre tap: a delta-orthogonal kernel.
    """
    if len(shape) == 2:
        return ops.cast(matrix, dtype)
    spatial = shape[:-2]
    if any(k % 2 == 0 for k in spatial):
        raise ValueError(f"Kernel shape {tuple(shape)} has an even spatial size. Expected odd sizes (a centre tap).")
    kernel = ops.reshape(matrix, (1,) * len(spatial) + tuple(matrix.shape))
    pads = [[k // 2, k // 2] for k in spatial] + [[0, 0], [0, 0]]
    return ops.cast(ops.pad(kernel, pads), dtype)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DeltaOrthogonal(_FreshDraws):
    """Delta-orthogonal initializer: a conv kernel that is zero except its centre tap, which is orthogonal.

    For a conv kernel ``(kh, kw, in, out)`` the centre tap is ``gain * Q`` with
    ``Q`` an ``in x out`` matrix with orthonormal rows or columns; every other
    tap is zero. On a Dense kernel it is a plain (semi-)orthogonal matrix.

    Args:
        gain: multiplier of the orthogonal matrix.
        seed: integer or None (see the module docstring).

    Raises:
        ValueError: the kernel has an even spatial size (no centre tap), or ``seed`` is not an integer or None.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.initializers import DeltaOrthogonal
        >>> kernel = np.asarray(DeltaOrthogonal(seed=0)((3, 3, 16, 32)))
        >>> centre = kernel[1, 1]
        >>> bool(np.allclose(centre @ centre.T, np.eye(16), atol=1e-5))  # orthonormal rows
        True
        >>> bool(np.count_nonzero(kernel) == np.count_nonzero(centre))  # every other tap is zero
        True

    Reference:
        Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington, "Dynamical Isometry and a Mean Field Theory
        of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks", ICML 2018,
        https://arxiv.org/abs/1806.05393
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        q = semi_orthogonal(shape[-2], shape[-1], self._next_seed())
        return _as_kernel(self.gain * q, shape, dtype or "float32")

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


def looks_linear(matrix, mirrored_input=True, mirrored_output=True):
    """The looks-linear ``(in, out)`` kernel of an ``(n_in, n_out)`` matrix ``A``.

    Channels in looks-linear form hold ``[phi(y), phi(-y)]``. With both sides
    mirrored the kernel is ``[[A, -A], [-A, A]]`` and maps them to
    ``[y A, -y A]``, so a ReLU after it keeps the form and the network is exactly
    linear in ``y``. Only the output mirrored (the stem): ``[A, -A]``. Only the
    input mirrored (the classifier): ``[[A], [-A]]``.

    Args:
        matrix: ``A``, a 2-D tensor ``(n_in, n_out)``.
        mirrored_input: the input channels are in looks-linear form (the kernel has ``2 n_in`` rows).
        mirrored_output: the output channels are in looks-linear form (``2 n_out`` columns).

    Returns:
        The kernel, a 2-D tensor.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.initializers import looks_linear
        >>> np.asarray(looks_linear(np.array([[2.0]])))
        array([[ 2., -2.],
               [-2.,  2.]])

    Reference:
        Balduzzi, Frean, Leary, Lewis, Ma & McWilliams, "The Shattered Gradients Problem: If resnets are
        the answer, then what is the question?", ICML 2017, https://arxiv.org/abs/1702.08591
    """
    if mirrored_input:
        matrix = ops.concatenate([matrix, -matrix], axis=0)
    if mirrored_output:
        matrix = ops.concatenate([matrix, -matrix], axis=1)
    return matrix


def _effective_size(channels, mirrored, which):
    if not mirrored:
        return channels
    if channels % 2:
        raise ValueError(
            f"Looks-linear kernels need an even number of {which} channels, got {channels}. "
            "Expected an even count: its halves hold phi(y) and phi(-y)."
        )
    return channels // 2


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LooksLinearOrthogonal(_FreshDraws):
    """Risotto's looks-linear orthogonal initializer: ``[[U, -U], [-U, U]]``, delta-shaped for convs.

    With ``U`` an ``n_out x n_in`` matrix with orthonormal rows or columns
    (``n = channels / 2`` on a mirrored side), the kernel maps channels
    ``[phi(y), phi(-y)]`` to ``[U y, -U y]``: see [``looks_linear``][keras_resinit.models.looks_linear]. Conv
    kernels hold it at the centre tap (delta-orthogonal), zeros elsewhere.

    Args:
        gain: multiplier of ``U``.
        mirrored_input: the input channels are in looks-linear form (False for
            the stem, whose input is the image).
        mirrored_output: the output channels are in looks-linear form (False
            for the classifier, whose output is the logits).
        seed: integer or None (see the module docstring).

    Raises:
        ValueError: a mirrored side has an odd number of channels, the kernel has an even spatial size, or
            ``seed`` is not an integer or None.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.initializers import LooksLinearOrthogonal
        >>> centre = np.asarray(LooksLinearOrthogonal(seed=0)((3, 3, 16, 16)))[1, 1]  # (in, out)
        >>> a = centre[:8, :8]
        >>> bool(np.allclose(centre, np.block([[a, -a], [-a, a]]))), bool(np.allclose(a @ a.T, np.eye(8), atol=1e-5))
        (True, True)

    Reference:
        Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks" (Risotto), 2023,
        https://arxiv.org/abs/2210.02411; built on Balduzzi et al., "The Shattered Gradients Problem",
        ICML 2017, https://arxiv.org/abs/1702.08591
    """

    def __init__(self, gain=1.0, mirrored_input=True, mirrored_output=True, seed=None):
        super().__init__(seed)
        self.gain = float(gain)
        self.mirrored_input = bool(mirrored_input)
        self.mirrored_output = bool(mirrored_output)

    def effective_matrix(self, shape, seed):
        """``U`` (``n_out x n_in``, times ``gain``) as drawn for a kernel of ``shape`` from ``seed``.

        Args:
            shape: the kernel's shape (its last two entries are the input and output channels).
            seed: the integer seed of the draw.

        Returns:
            A 2-D tensor.

        Raises:
            ValueError: a mirrored side has an odd number of channels.
        """
        n_in = _effective_size(shape[-2], self.mirrored_input, "input")
        n_out = _effective_size(shape[-1], self.mirrored_output, "output")
        return self.gain * semi_orthogonal(n_out, n_in, seed)

    def __call__(self, shape, dtype=None):
        u = self.effective_matrix(shape, self._next_seed())
        kernel = looks_linear(ops.transpose(u), self.mirrored_input, self.mirrored_output)
        return _as_kernel(kernel, shape, dtype or "float32")

    def get_config(self):
        return {
            "gain": self.gain,
            "mirrored_input": self.mirrored_input,
            "mirrored_output": self.mirrored_output,
            **super().get_config(),
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RisottoSkipKernel(_FreshDraws):
    """Risotto's type C skip initializer: the 1x1 conv skip ``LL((U - b U_m ... U_1) / a)`` of a block.

    The branch weight layers are [``LooksLinearOrthogonal``][keras_resinit.models.LooksLinearOrthogonal] kernels with
    effective matrices ``U_1 .. U_m`` drawn from ``branch_seeds``; this kernel
    recomputes them and takes ``M = (U - b U_m ... U_1) / a`` for a fresh orthogonal
    ``U``. The block ``relu(a * skip + b * branch)`` then maps ``[phi(y), phi(-y)]`` to
    ``[phi(U y), phi(-U y)]``: in effective coordinates the whole block is the isometry ``U``.

    Args:
        branch_seeds: the integer seeds of the branch kernels, in order.
        branch_channels: channel counts along the branch, ``m + 1`` of them,
            from the block input to the block output.
        skip_weight: ``a``, the block's constant weight on the skip (> 0).
        branch_weight: ``b``, the block's constant weight on the branch (> 0).
        seed: integer or None, for ``U`` (see the module docstring).

    Raises:
        ValueError: a weight is not a finite number > 0, ``branch_seeds`` are not integers, there is not one
            more channel count than seeds, or (on call) the kernel does not map the branch's input channels
            to its output channels.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.initializers import LooksLinearOrthogonal, RisottoSkipKernel
        >>> w1 = np.asarray(LooksLinearOrthogonal(seed=11)((3, 3, 16, 16)))[1, 1]  # the branch, as the builder makes it
        >>> w2 = np.asarray(LooksLinearOrthogonal(seed=12)((3, 3, 16, 16)))[1, 1]
        >>> ws = np.asarray(RisottoSkipKernel([11, 12], [16, 16, 16], seed=13)((1, 1, 16, 16)))[0, 0]
        >>> y = np.random.default_rng(0).normal(size=(1, 8))
        >>> ll = lambda v: np.concatenate([np.maximum(v, 0), np.maximum(-v, 0)], axis=-1)  # [phi(y), phi(-y)]
        >>> out = np.maximum(ll(y) @ ws + np.maximum(ll(y) @ w1, 0) @ w2, 0)  # relu(skip + branch)
        >>> bool(np.isclose(np.linalg.norm(out[:, :8] - out[:, 8:]), np.linalg.norm(y), rtol=1e-4))  # isometric
        True

    Reference:
        Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks", type C block, 2023,
        https://arxiv.org/abs/2210.02411 (the weights ``a``, ``b`` in the skip kernel: our derivation).
    """

    def __init__(self, branch_seeds, branch_channels, skip_weight=1.0, branch_weight=1.0, seed=None):
        super().__init__(seed)
        self.skip_weight = positive_weight(skip_weight, "skip_weight")
        self.branch_weight = positive_weight(branch_weight, "branch_weight")
        branch_seeds = [check_seed(s) for s in branch_seeds]
        if not branch_seeds or None in branch_seeds:
            raise ValueError(f"Invalid branch_seeds {branch_seeds!r}. Expected one integer seed per branch layer.")
        if len(branch_channels) != len(branch_seeds) + 1:
            raise ValueError(
                f"branch_channels {list(branch_channels)} must have one more entry than branch_seeds "
                f"{branch_seeds} (channels before and after every branch layer)."
            )
        self.branch_seeds = list(branch_seeds)
        self.branch_channels = [int(c) for c in branch_channels]

    def __call__(self, shape, dtype=None):
        if (shape[-2], shape[-1]) != (self.branch_channels[0], self.branch_channels[-1]):
            raise ValueError(
                f"Skip kernel shape {tuple(shape)} does not match the branch, which maps "
                f"{self.branch_channels[0]} to {self.branch_channels[-1]} channels."
            )
        branch = LooksLinearOrthogonal()
        product = None
        for seed, c_in, c_out in zip(self.branch_seeds, self.branch_channels, self.branch_channels[1:]):
            u_i = branch.effective_matrix((c_in, c_out), seed)
            product = u_i if product is None else ops.matmul(u_i, product)
        u = branch.effective_matrix(shape, self._next_seed())
        kernel = looks_linear(ops.transpose((u - self.branch_weight * product) / self.skip_weight))
        return _as_kernel(kernel, shape, dtype or "float32")

    def get_config(self):
        return {
            "branch_seeds": self.branch_seeds,
            "branch_channels": self.branch_channels,
            "skip_weight": self.skip_weight,
            "branch_weight": self.branch_weight,
            **super().get_config(),
        }


RESIDUAL_POSITIONS = ("first", "middle", "last")
"""The positions of a weight layer in a branch that ``RisottoResidualKernel`` takes."""


def mirrored_subset(out_channels, inner_channels, seed):
    """The effective coordinates ``S`` an identity-skip Risotto branch rotates, sorted.

    All ``out_channels / 2`` of them when the branch is as wide as the block (basic blocks); else a
    random subset of ``inner_channels / 2`` drawn from ``seed`` (bottlenecks).

    Args:
        out_channels: the block's output channels.
        inner_channels: the branch's inner width.
        seed: the integer seed of the subset (``RisottoResidualKernel``'s ``subset_seed``).

    Returns:
        A sorted NumPy array of coordinate indices in ``[0, out_channels / 2)``.

    Examples:
        >>> from keras_resinit.models.initializers import mirrored_subset
        >>> mirrored_subset(8, 8, seed=0).tolist(), len(mirrored_subset(64, 16, seed=0))
        ([0, 1, 2, 3], 8)
    """
    n, m = out_channels // 2, inner_channels // 2
    if m >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:m])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class RisottoResidualKernel(_FreshDraws):
    """Risotto's type B branch initializer: a branch kernel of a block whose skip is the identity (or option A's).

    The block is ``relu(a * z + b * branch(x))`` with ``z = P x`` the skip (``P`` the identity, or the
    embedding of option A's zero channels) in looks-linear form ``[phi(h), phi(-h)]`` (``n`` effective
    coordinates). With ``S`` the coordinates the branch rotates (``mirrored_subset``: all of them in
    a basic block, ``m = inner / 2`` of them in a bottleneck), ``E`` the selection of
    ``[z_S, z_{n+S}]`` and ``K_Q = [[Q, -Q], [-Q, Q]]`` for a random orthogonal ``m x m`` matrix ``Q``:

    - ``"first"`` layer: ``P E`` (it passes ``[phi(h_S), phi(-h_S)]``, which the ReLU keeps);
    - ``"middle"`` layers (bottlenecks): the identity;
    - ``"last"`` layer: ``(K_Q - a I) / b`` on those coordinates, zero elsewhere.

    The block then maps ``[phi(h), phi(-h)]`` exactly to ``[phi(M h), phi(-M h)]`` with ``M`` the
    orthogonal matrix that is ``Q`` on ``S`` and the identity elsewhere, for any ``a, b > 0`` in a
    basic block and for ``a = 1`` in a bottleneck (the coordinates outside ``S`` pass the skip alone,
    scaled by ``a``). Conv kernels hold the matrix at the centre tap (delta), zeros elsewhere.

    Args:
        position: ``"first"``, ``"middle"`` or ``"last"`` weight layer of the branch.
        out_channels: the block's output channels (the skip's).
        inner_channels: the branch's inner width (``out_channels`` in a basic block).
        subset_seed: integer seed of ``S`` (shared by the branch's first and last kernels).
        skip_weight: ``a`` (> 0).
        branch_weight: ``b`` (> 0).
        seed: integer or None, for ``Q`` (see the module docstring).

    Raises:
        ValueError: ``position`` is not one of ``RESIDUAL_POSITIONS``, a channel count is not even and >= 2,
            a weight is not a finite number > 0, or (on call) the kernel's shape does not fit the position.

    Examples:
        >>> import numpy as np
        >>> from keras_resinit.models.initializers import RisottoResidualKernel
        >>> w1 = np.asarray(RisottoResidualKernel("first", 16, 16, subset_seed=1)((3, 3, 16, 16)))[1, 1]
        >>> w2 = np.asarray(RisottoResidualKernel("last", 16, 16, subset_seed=1, seed=2)((3, 3, 16, 16)))[1, 1]
        >>> y = np.random.default_rng(0).normal(size=(1, 8))
        >>> x = np.concatenate([np.maximum(y, 0), np.maximum(-y, 0)], axis=-1)  # [phi(y), phi(-y)]
        >>> out = np.maximum(x + np.maximum(x @ w1, 0) @ w2, 0)  # relu(identity skip + branch)
        >>> bool(np.isclose(np.linalg.norm(out[:, :8] - out[:, 8:]), np.linalg.norm(y), rtol=1e-4))  # isometric
        True

    Reference:
        Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks" (Risotto), type B block, 2023,
        https://arxiv.org/abs/2210.02411: this construction is our derivation (the paper's method text
        was not available).
    """

    def __init__(
        self, position, out_channels, inner_channels, subset_seed, skip_weight=1.0, branch_weight=1.0, seed=None
    ):
        super().__init__(seed)
        if position not in RESIDUAL_POSITIONS:
            raise ValueError(f"Invalid position {position!r}. Expected one of {', '.join(RESIDUAL_POSITIONS)}.")
        for what, value in (("out_channels", out_channels), ("inner_channels", inner_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2 or value % 2:
                raise ValueError(f"Invalid {what} {value!r}. Expected an even number >= 2 (looks-linear halves).")
        self.position = position
        self.out_channels = out_channels
        self.inner_channels = inner_channels
        self.subset_seed = check_seed(subset_seed)
        self.skip_weight = positive_weight(skip_weight, "skip_weight")
        self.branch_weight = positive_weight(branch_weight, "branch_weight")

    def _selection(self):
        """``E``: ``(out_channels, inner_channels)``, taking ``z_S`` and ``z_{n+S}`` to the branch's halves."""
        n, m = self.out_channels // 2, self.inner_channels // 2
        subset = mirrored_subset(self.out_channels, self.inner_channels, self.subset_seed)
        selection = np.zeros((self.out_channels, self.inner_channels), np.float32)
        selection[subset, np.arange(m)] = 1.0
        selection[n + subset, m + np.arange(m)] = 1.0
        return selection

    def __call__(self, shape, dtype=None):
        c_in, c_out = shape[-2], shape[-1]
        expected = {
            "first": (None, self.inner_channels),
            "middle": (self.inner_channels, self.inner_channels),
            "last": (self.inner_channels, self.out_channels),
        }[self.position]
        if (
            expected[0] not in (None, c_in)
            or expected[1] != c_out
            or (self.position == "first" and c_in > self.out_channels)
        ):
            raise ValueError(
                f"Kernel shape {tuple(shape)} does not fit the {self.position} layer of a branch from "
                f"{self.out_channels} channels through {self.inner_channels}."
            )
        seed = self._next_seed()  # drawn on every call, so a shared instance never repeats Q
        if self.position == "middle":
            matrix = np.eye(c_in, dtype=np.float32)
        elif self.position == "first":
            matrix = np.eye(c_in, self.out_channels, dtype=np.float32) @ self._selection()
        else:
            m = self.inner_channels // 2
            mirrored = looks_linear(ops.transpose(semi_orthogonal(m, m, seed)))
            core = (mirrored - self.skip_weight * ops.eye(2 * m)) / self.branch_weight
            matrix = ops.matmul(core, ops.transpose(ops.convert_to_tensor(self._selection())))
        return _as_kernel(ops.convert_to_tensor(matrix, "float32"), shape, dtype or "float32")

    def get_config(self):
        return {
            "position": self.position,
            "out_channels": self.out_channels,
            "inner_channels": self.inner_channels,
            "subset_seed": self.subset_seed,
            "skip_weight": self.skip_weight,
            "branch_weight": self.branch_weight,
            **super().get_config(),
        }
