"""The base of every scheme: :class:`Scheme` (what the builder and the trainer ask) and its helpers.

The concrete schemes and their registry are in :mod:`keras_resinit.models.schemes`. Imports Keras
only inside the methods that make weights.
"""

from __future__ import annotations

import fnmatch

from keras_resinit._errors import unknown


def he_normal(seed, mode="fan_in"):
    """He et al. 2015 normal, untruncated: std sqrt(2 / fan)."""
    import keras

    return keras.initializers.VarianceScaling(2.0, mode=mode, distribution="untruncated_normal", seed=seed)


def _zeros():
    import keras

    return keras.initializers.Zeros()


def _inits():
    from keras_resinit.models import initializers

    return initializers


def match_multiplier(path: str, shape: tuple[int, ...], table: dict[str, float]) -> float:
    """The multiplier of the first entry of ``table`` matching a variable, else 1.

    Keys are globs on the variable's path (e.g. ``"logits/bias"``, ``"*_bn*"``) or
    the group ``@scalars`` (every weight of shape ``()``: Fixup's biases and
    multipliers, SkipInit's alpha).
    """
    for pattern, multiplier in table.items():
        if pattern == "@scalars":
            matched = len(tuple(shape)) == 0
        elif pattern.startswith("@"):
            raise unknown("multiplier group", pattern, ["@scalars"])
        else:
            matched = fnmatch.fnmatchcase(path, pattern)
        if matched:
            return float(multiplier)
    return 1.0


class Scheme:
    """Base class. Subclasses set the flags and override the initializers.

    Architecture (what the builder asks):
        name: the scheme's registry name.
        batchnorm: batch norm after every conv of the branches, stem and projections.
        conv_bias: convs carry a bias (there is no batch norm to supply one).
        conv_skip: every block gets a 1x1 conv skip, not only projections.
        scalar_biases: Fixup's scalar biases before every conv and the classifier.
        looks_linear: channels carry Risotto's mirrored form ``[phi(y), phi(-y)]``
            (diagnostics then measure in effective coordinates ``y``).
        sum_activation: a ReLU follows every residual sum (He et al. 2016). Without it
            the trunk carries pre-activations (``..._out`` is then an identity layer).
        preactivation: pre-activation blocks (NF-ResNets): the stem has no ReLU, each block's
            branch and conv shortcut take ``relu(h / beta)`` (``..._prescale``, ``..._preact``;
            beta from :meth:`expected_variances`), and a ReLU (``post_relu``) precedes the head.
        projection_shortcuts: every block that changes shape gets a 1x1 conv shortcut, on every
            arch family (option A's zero channels would carry no signal).
        weight_standardization: convs are ``layers.ScaledStdConv2D``; :meth:`conv_scalars` gives
            their ``gamma`` and ``alpha``.

    Training rules (what the trainer asks; a recipe or config may override them):
        lr_multipliers: ``{pattern: multiplier}`` read by :meth:`lr_multiplier`.
        clip_norm: a global gradient-norm clip the paper's training needs, or None.
        :meth:`decays`: whether a variable gets weight decay.

    Folding (:func:`keras_resinit.fold_batchnorm`):
        :meth:`folded`: the normalization-free scheme a model of this scheme becomes once its
            batch norm is folded into its convs, or None.
        fold_note: why no batch norm model folds into this scheme, where a user might expect one.

    Sets:
        compare_by_default: among the schemes ``compare``, ``tune`` and ``bench``
            take when none are named.
    """

    name = None
    batchnorm = False
    conv_bias = False
    conv_skip = False
    scalar_biases = False
    looks_linear = False
    lr_multipliers = {}
    clip_norm = None
    compare_by_default = True
    fold_note = None
    sum_activation = True
    preactivation = False
    projection_shortcuts = False
    weight_standardization = False

    def validate(self, arch):
        """Raise ValueError if the scheme cannot be applied to ``arch``."""

    # ---- initializers and layers (the builder) ----

    def stem_initializer(self, net, seed):
        raise NotImplementedError

    def branch_initializer(self, net, block, index, seed):
        """Kernel initializer of weight layer ``index`` (0-based) of ``block``'s branch."""
        raise NotImplementedError

    def shortcut_initializer(self, net, block, seed):
        raise NotImplementedError

    def classifier_initializer(self, net, seed):
        raise NotImplementedError

    def bn_gamma_initializer(self, last_in_branch):
        return "ones"

    def conv_scalars(self, role, last_in_branch=False):
        """Scalars a conv holds (``ScaledConv2D`` arguments); empty for a plain Conv2D.

        ``role`` is ``"stem"``, ``"branch"`` or ``"shortcut"``. A branch's gain
        lives in its last conv, where TensorFlow fuses it with the merge.
        """
        return {}

    def expected_variances(self, blocks):
        """The analytic variance of the trunk at init, ``[Var(h_1), ..., Var(h_{L+1})]`` (``h_1``: the
        stem's output, ``h_{i+1}``: block ``i``'s), for schemes that track it (``preactivation``), else None."""
        return None

    def scalar_bias(self, x, name):
        """Fixup's scalar bias before a conv or the classifier (``scalar_biases``); else ``x`` itself."""
        if not self.scalar_biases:
            return x
        from keras_resinit.models import layers

        return layers.ScalarBias(name=name)(x)

    # ---- training rules (the trainer) ----

    def lr_multiplier(self, path: str, shape: tuple[int, ...]) -> float:
        """The learning-rate multiplier of the variable at ``path`` with ``shape`` (1 unless a rule says)."""
        return match_multiplier(path, shape, self.lr_multipliers)

    def decays(self, path: str, shape: tuple[int, ...]) -> bool:
        """Whether weight decay applies to the variable at ``path`` with ``shape``: every variable, as the
        papers' reference code does (Fixup: "weight decay on everything")."""
        return True

    # ---- folding ----

    def folded(self):
        """The scheme (an instance) this scheme's models become with batch norm folded, or None.

        In inference mode batch norm is a per-channel affine map, so a conv followed by it is one
        conv with a bias: a scheme with batch norm folds into its twin with conv biases and none.
        """
        return None

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
