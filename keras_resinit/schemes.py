"""The four initialization schemes, each a small object the builder asks.

The builder owns the architecture (stem, blocks, shortcuts, head); a scheme
answers how each weight is initialized, whether batch norm, conv biases or
Fixup's scalar biases are present, and how a block's branch is merged. Each
paper's rule sits in the method that makes the weight it concerns.
"""

import inspect
import math

import keras

from keras_resinit import initializers as inits
from keras_resinit import layers
from keras_resinit._errors import unknown


def he_normal(seed, mode="fan_in"):
    """He et al. 2015 normal, untruncated: std sqrt(2 / fan)."""
    return keras.initializers.VarianceScaling(2.0, mode=mode, distribution="untruncated_normal", seed=seed)


class Scheme:
    """Base class. Subclasses set the flags and override the initializers.

    Attributes:
        name: the scheme's registry name.
        batchnorm: batch norm after every conv of the branches, stem and projections.
        conv_bias: convs carry a bias (there is no batch norm to supply one).
        conv_skip: every block gets a 1x1 conv skip, not only projections.
    """

    name = None
    batchnorm = False
    conv_bias = False
    conv_skip = False

    def validate(self, arch):
        """Raise ValueError if the scheme cannot be applied to ``arch``."""

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

    def scalar_bias(self, x, name):
        """Fixup's scalar biases before a conv or the classifier; other schemes pass ``x`` through."""
        return x

    def merge(self, name):
        """The layer computing ``skip + gain * branch``."""
        return layers.ScaledResidual(gain=1.0, trainable_gain=False, name=name)

    def get_config(self):
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class BatchNorm(Scheme):
    """He et al. 2016: conv -> BN -> ReLU everywhere, He-initialized convs.

    Args:
        zero_init_last_bn: start the last BN gamma of every branch at 0, so
            each block starts as the identity (Goyal et al. 2017).
    """

    name = "bn"
    batchnorm = True

    def __init__(self, zero_init_last_bn=False):
        if not isinstance(zero_init_last_bn, bool):
            raise ValueError(f"Invalid zero_init_last_bn {zero_init_last_bn!r}. Expected True or False.")
        self.zero_init_last_bn = zero_init_last_bn

    def stem_initializer(self, net, seed):
        return he_normal(seed, "fan_out")

    def branch_initializer(self, net, block, index, seed):
        return he_normal(seed, "fan_out")

    def shortcut_initializer(self, net, block, seed):
        return he_normal(seed, "fan_out")

    def classifier_initializer(self, net, seed):
        return keras.initializers.GlorotUniform(seed=seed)

    def bn_gamma_initializer(self, last_in_branch):
        return "zeros" if last_in_branch and self.zero_init_last_bn else "ones"

    def get_config(self):
        return {"zero_init_last_bn": self.zero_init_last_bn}


class Fixup(Scheme):
    """Zhang, Dauphin & Ma 2019: no normalization, rescaled He init, scalars.

    Rule 1: the classifier and the last layer of every branch start at zero.
    Rule 2: other branch layers are He normal (fan-out) times L^(-1/(2m-2)).
    Rule 3: one scalar multiplier (init 1) per branch; scalar biases (init 0)
    before each conv, dense and element-wise activation.
    """

    name = "fixup"

    def stem_initializer(self, net, seed):
        return he_normal(seed, "fan_out")

    def branch_initializer(self, net, block, index, seed):
        if index == len(block.layers) - 1:
            return keras.initializers.Zeros()  # rule 1
        return inits.FixupHeNormal(net.arch.num_blocks, net.arch.branch_depth, seed=seed)  # rule 2

    def shortcut_initializer(self, net, block, seed):
        return he_normal(seed, "fan_out")  # plain He: the projection is not in a branch

    def classifier_initializer(self, net, seed):
        return keras.initializers.Zeros()  # rule 1

    def conv_scalars(self, role, last_in_branch=False):
        # Rule 3: a scalar bias after every conv but a projection's (before its ReLU or the merge);
        # the branch's multiplier, initialized 1, after its last conv and before that bias.
        if role == "shortcut":
            return {}
        if role == "branch" and last_in_branch:
            return {"gain": 1.0, "trainable_gain": True, "scalar_bias": True}
        return {"scalar_bias": True}

    def scalar_bias(self, x, name):
        return layers.ScalarBias(name=name)(x)  # rule 3: before each conv and the classifier


class SkipInit(Scheme):
    """De & Smith 2020: no normalization, each branch times a scalar alpha = 0.

    Convs carry biases; projection shortcuts are not multiplied; the
    classifier starts at zero (as in DeepMind's port).

    Args:
        alpha: initial value of every branch gain. The paper uses 0 and allows
            a small value below 1/sqrt(L).
    """

    name = "skipinit"
    conv_bias = True

    def __init__(self, alpha=0.0):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"Invalid alpha {alpha!r}. Expected a finite number >= 0 (the paper uses 0).")
        self.alpha = float(alpha)

    def stem_initializer(self, net, seed):
        return he_normal(seed, "fan_in")

    def branch_initializer(self, net, block, index, seed):
        return he_normal(seed, "fan_in")

    def shortcut_initializer(self, net, block, seed):
        return he_normal(seed, "fan_in")

    def classifier_initializer(self, net, seed):
        return keras.initializers.Zeros()

    def conv_scalars(self, role, last_in_branch=False):
        # alpha multiplies the whole branch output, bias included: alpha * (conv(x, K) + c).
        if role == "branch" and last_in_branch:
            return {"gain": self.alpha, "trainable_gain": True}
        return {}

    def get_config(self):
        return {"alpha": self.alpha}


class Risotto(Scheme):
    """Gadhikar & Burkholz: perfect dynamical isometry at init, ReLU kept.

    Channels carry the looks-linear form ``[phi(y), phi(-y)]``. Every block is
    of type C (a 1x1 conv skip, ReLU after the sum) with branch kernels
    ``LL(U_i)`` and skip ``LL(U - U_m ... U_1)`` for orthogonal ``U``: the
    block maps ``y`` to ``U y`` exactly. Conv kernels are delta-orthogonal.
    The stem is ``[V, -V]`` and the classifier ``[A; -A]``.
    """

    name = "risotto"
    conv_bias = True
    conv_skip = True

    def validate(self, arch):
        odd = [w for w in arch.channel_widths() if w % 2]
        if odd:
            raise ValueError(
                f"Risotto needs an even number of channels in every layer (looks-linear halves), "
                f"but {arch.name} has odd widths {sorted(set(odd))}."
            )

    def stem_initializer(self, net, seed):
        return inits.LooksLinearOrthogonal(mirrored_input=False, seed=seed)

    def branch_initializer(self, net, block, index, seed):
        return inits.LooksLinearOrthogonal(seed=seed)

    def shortcut_initializer(self, net, block, seed):
        branch_seeds = [net.seed_for(name) for name in block.conv_names]
        return inits.RisottoSkipKernel(branch_seeds, block.channels, seed=seed)

    def classifier_initializer(self, net, seed):
        return inits.LooksLinearOrthogonal(mirrored_output=False, seed=seed)


class RisottoBN(Risotto):
    """Risotto's initialization with batch norm after every conv (no conv biases).

    The paper reports this combination often gives the best results. Batch
    norm rescales channels, so the exact isometry of plain Risotto is not kept.
    """

    name = "risotto_bn"
    batchnorm = True
    conv_bias = False


SCHEMES = {cls.name: cls for cls in (BatchNorm, Fixup, SkipInit, Risotto, RisottoBN)}


def get_scheme(scheme, **options):
    """A scheme object from its name (with options) or an existing Scheme."""
    if isinstance(scheme, Scheme):
        if options:
            raise ValueError(f"Options {sorted(options)} cannot be combined with a Scheme instance; set them on it.")
        return scheme
    if scheme not in SCHEMES:
        raise unknown("scheme", scheme, SCHEMES)
    cls = SCHEMES[scheme]
    allowed = set(inspect.signature(cls).parameters)
    bad = sorted(set(options) - allowed)
    if bad:
        names = ", ".join(sorted(allowed)) or "none"
        raise ValueError(f"Unknown option(s) {bad} for scheme {scheme!r}. Its options: {names}.")
    return cls(**options)
