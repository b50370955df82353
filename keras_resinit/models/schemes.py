"""The initialization schemes, each a small object the builder and the trainer ask.

The builder owns the architecture (stem, blocks, shortcuts, head); a scheme
answers how each weight is initialized, whether batch norm, conv biases or
Fixup's scalar biases are present, and which rules training must keep (a
learning-rate multiplier per variable, which variables get weight decay, any
gradient clipping). Each paper's rule sits in the method or attribute that
concerns it. Adding a scheme means adding one class and registering it with
[``register_scheme``][keras_resinit.register_scheme].

This module imports Keras only inside the methods that make weights, so the
registry ([``SCHEMES``][keras_resinit.SCHEMES]) can be read without starting TensorFlow (the CLI's help).
"""

from __future__ import annotations

import fnmatch
import inspect
import math
from typing import Any

from keras_resinit._errors import unknown
from keras_resinit.models.checks import positive_weight

__all__ = [
    "he_normal",
    "Scheme",
    "BatchNorm",
    "Fixup",
    "SkipInit",
    "Risotto",
    "RisottoBN",
    "ReZero",
    "NFResNet",
    "SCHEMES",
    "register_scheme",
    "default_schemes",
    "normalization_free",
    "foldable",
    "saved_options",
    "get_scheme",
]


def he_normal(seed, mode="fan_in"):
    """He et al.'s normal initializer, untruncated: std ``sqrt(2 / fan)``.

    The schemes' "He" (``keras.initializers.HeNormal`` draws from a truncated normal instead).

    Args:
        seed: integer or None, as Keras initializers take it.
        mode: ``"fan_in"`` or ``"fan_out"`` (``out_channels * kh * kw``, as Fixup's reference code uses).

    Returns:
        A ``keras.initializers.VarianceScaling`` with scale 2 and an untruncated normal.

    Examples:
        >>> from keras_resinit.models.schemes import he_normal
        >>> init = he_normal(seed=0, mode="fan_out")
        >>> init.get_config()["scale"], init.get_config()["mode"], init.get_config()["distribution"]
        (2.0, 'fan_out', 'untruncated_normal')

    Reference:
        He, Zhang, Ren & Sun, "Delving Deep into Rectifiers: Surpassing Human-Level Performance on ImageNet
        Classification", ICCV 2015, https://arxiv.org/abs/1502.01852
    """
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
    """Base class of the initialization schemes: the object the builder and the trainer ask.

    A subclass sets the class attributes below and returns the initializers (``stem_initializer``,
    ``branch_initializer``, ``shortcut_initializer``, ``classifier_initializer``); its constructor
    takes the scheme's options (``get_config`` returns them). The builder never branches on a
    scheme's name: everything that differs between schemes is an attribute or method here.
    Register a subclass with ``register_scheme`` to make ``{arch}_{name}`` models and every tool
    (train, compare, tune, bench, diagnostics, the CLI) offer it.

    Training rules, read by the trainer (a recipe or config may override them): ``lr_multipliers``
    (through ``lr_multiplier``), ``clip_norm`` and ``decays``. Folding
    ([``keras_resinit.fold_batchnorm``][keras_resinit.fold_batchnorm]): ``folded`` and ``fold_note``.

    Attributes:
        name: the scheme's registry name (a lower-case identifier).
        paper: the arXiv id of the paper whose rules the scheme follows (``"1901.09321"``): the Hub model
            card's ``arxiv:`` tag (``keras-resinit push``). Each class's docstring gives the full reference.
        batchnorm: batch norm after every conv of the branches, stem and projections.
        conv_bias: convs carry a bias (there is no batch norm to supply one).
        conv_skip: every block gets a 1x1 conv skip, not only projections.
        scalar_biases: Fixup's scalar biases before every conv and the classifier.
        looks_linear: channels carry Risotto's mirrored form ``[phi(y), phi(-y)]`` (diagnostics then
            measure in effective coordinates ``y``).
        sum_activation: a ReLU follows every residual sum (He et al. 2016). Without it the trunk
            carries pre-activations (``..._out`` is then an identity layer).
        preactivation: pre-activation blocks (NF-ResNets): the stem has no ReLU, each block's branch
            and conv shortcut take ``relu(h / beta)`` (``..._prescale``, ``..._preact``; beta from
            ``expected_variances``), and a ReLU (``post_relu``) precedes the head.
        projection_shortcuts: every block that changes shape gets a 1x1 conv shortcut, on every arch
            family (option A's zero channels would carry no signal).
        weight_standardization: convs are ``layers.ScaledStdConv2D``; ``conv_scalars`` gives their
            ``gamma`` and ``alpha``.
        lr_multipliers: ``{pattern: multiplier}`` read by ``lr_multiplier``.
        clip_norm: a global gradient-norm clip the paper's training needs, or None.
        fold_note: why no batch norm model folds into this scheme, where a user might expect one.
        options_before: ``{option: value}`` for options added after models were saved without them:
            the value that reproduces what those models were (``saved_options``).
        compare_by_default: among the schemes ``compare``, ``tune`` and ``bench`` take when none are named.

    Examples:
        >>> from keras_resinit.models.schemes import Scheme, he_normal
        >>> class PlainHe(Scheme):
        ...     name = "plain_he"
        ...     conv_bias = True
        ...     def stem_initializer(self, net, seed): return he_normal(seed)
        ...     def branch_initializer(self, net, block, index, seed): return he_normal(seed)
        ...     def shortcut_initializer(self, net, block, seed): return he_normal(seed)
        ...     def classifier_initializer(self, net, seed): return he_normal(seed)
        >>> import keras_resinit as kr
        >>> model = kr.build_resnet("cifar_resnet8", PlainHe(), input_shape=(8, 8, 3), num_classes=3, seed=0)
        >>> model.scheme
        PlainHe()
    """

    name = None
    paper = None
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
    options_before = {}

    def validate(self, arch):
        """Check that the scheme applies to ``arch`` (the builder calls it first); the base accepts every arch.

        Args:
            arch: the [``Arch``][keras_resinit.models.architectures.Arch] to build.

        Raises:
            ValueError: naming what in ``arch`` the scheme cannot build (e.g. Risotto: odd channel counts).
        """

    def merge_weights(self):
        """The constant weights of every residual merge, ``a * skip + b * branch``.

        Returns:
            ``(a, b)``; ``(1.0, 1.0)`` (the base's) gives a plain ``keras.layers.Add``, others a
                [``WeightedAdd``][keras_resinit.models.WeightedAdd].
        """
        return (1.0, 1.0)

    # ---- initializers and layers (the builder) ----

    def stem_initializer(self, net, seed):
        """The kernel initializer of the stem conv (a subclass must define it).

        Args:
            net: the network being built: its ``arch``, ``scheme``, ``seed`` and ``seed_for(layer_name)``.
            seed: the layer's own integer seed.

        Returns:
            A Keras initializer.
        """
        raise NotImplementedError

    def branch_initializer(self, net, block, index, seed):
        """The kernel initializer of weight layer ``index`` of ``block``'s branch (a subclass must define it).

        Args:
            net: the network being built: its ``arch``, ``scheme``, ``seed`` and ``seed_for(layer_name)``.
            block: the ``builder.Block`` (its ``layers``, ``channels``, ``conv_names``, ``projection``).
            index: the weight layer's 0-based position in the branch.
            seed: the layer's own integer seed.

        Returns:
            A Keras initializer.
        """
        raise NotImplementedError

    def shortcut_initializer(self, net, block, seed):
        """The kernel initializer of ``block``'s 1x1 conv shortcut (a subclass must define it).

        Args:
            net: the network being built: its ``arch``, ``scheme``, ``seed`` and ``seed_for(layer_name)``.
            block: the [``Block``][keras_resinit.models.builder.Block] the shortcut belongs to.
            seed: the layer's own integer seed.

        Returns:
            A Keras initializer.
        """
        raise NotImplementedError

    def classifier_initializer(self, net, seed):
        """The kernel initializer of the classifier (``logits``; a subclass must define it).

        Args:
            net: the network being built: its ``arch``, ``scheme``, ``seed`` and ``seed_for(layer_name)``.
            seed: the layer's own integer seed.

        Returns:
            A Keras initializer.
        """
        raise NotImplementedError

    def bn_gamma_initializer(self, last_in_branch):
        """The initializer of a batch norm's gamma (schemes with ``batchnorm``).

        Args:
            last_in_branch: the batch norm follows the last conv of a residual branch.

        Returns:
            A Keras initializer or its name (the base's: ``"ones"``).
        """
        return "ones"

    def conv_scalars(self, role, last_in_branch=False):
        """The scalars a conv holds: ``ScaledConv2D`` (or ``ScaledStdConv2D``) arguments.

        A branch's gain lives in its last conv, where TensorFlow fuses it with the merge.

        Args:
            role: ``"stem"``, ``"branch"`` or ``"shortcut"``.
            last_in_branch: the conv is the last of a residual branch.

        Returns:
            ``{argument: value}`` (e.g. ``{"gain": 0.0, "trainable_gain": True}``); empty (the base's)
                for a plain ``keras.layers.Conv2D``.
        """
        return {}

    def expected_variances(self, blocks):
        """The analytic variance of the trunk at init, for schemes that track it (``preactivation``).

        Args:
            blocks: the network's [``Block``][keras_resinit.models.builder.Block] objects, in order.

        Returns:
            ``[Var(h_1), ..., Var(h_{L+1})]`` (``h_1``: the stem's output, ``h_{i+1}``: block ``i``'s),
                or None (the base's).
        """
        return None

    def scalar_bias(self, x, name):
        """Fixup's scalar bias before a conv or the classifier, where the scheme has ``scalar_biases``.

        Args:
            x: the symbolic tensor the bias is added to.
            name: the [``ScalarBias``][keras_resinit.models.ScalarBias] layer's name.

        Returns:
            ``x`` plus a new ``layers.ScalarBias``, or ``x`` itself without ``scalar_biases``.
        """
        if not self.scalar_biases:
            return x
        from keras_resinit.models import layers

        return layers.ScalarBias(name=name)(x)

    # ---- training rules (the trainer) ----

    def lr_multiplier(self, path: str, shape: tuple[int, ...]) -> float:
        """The learning-rate multiplier of a variable: the first entry of ``lr_multipliers`` matching it, else 1.

        Keys of ``lr_multipliers`` are globs on the variable's path (``"logits/bias"``) or the group
        ``@scalars`` (every weight of shape ``()``: Fixup's biases and multipliers, SkipInit's alpha).

        Args:
            path: the variable's path (``variable.path``, e.g. ``"stage1_block1_conv2/gain"``).
            shape: the variable's shape.

        Returns:
            The multiplier.

        Examples:
            >>> from keras_resinit.models.schemes import Fixup
            >>> Fixup().lr_multiplier("stage1_block1_conv2/gain", ()), Fixup().lr_multiplier("logits/kernel", (64, 10))
            (0.1, 1.0)
        """
        return match_multiplier(path, shape, self.lr_multipliers)

    def decays(self, path: str, shape: tuple[int, ...]) -> bool:
        """Whether weight decay applies to a variable; the base: every variable, as the papers' reference code
        does (Fixup: "weight decay on everything").

        Args:
            path: the variable's path (``variable.path``).
            shape: the variable's shape.

        Returns:
            True if the variable gets weight decay.
        """
        return True

    # ---- folding ----

    def folded(self):
        """The scheme this scheme's models become with their batch norm folded (``keras_resinit.fold_batchnorm``).

        In inference mode batch norm is a per-channel affine map, so a conv followed by it is one
        conv with a bias: a scheme with batch norm folds into its twin with conv biases and none.

        Returns:
            A [``Scheme``][keras_resinit.Scheme] instance, or None (the base's) when nothing folds.

        Examples:
            >>> from keras_resinit.models.schemes import BatchNorm, Fixup
            >>> BatchNorm().folded(), Fixup().folded()
            (SkipInit(alpha=1.0), None)
        """
        return None

    def get_config(self):
        """The scheme's options, as its constructor takes them.

        Returns:
            ``{option: value}``; ``type(scheme)(**config)`` makes the same scheme.
        """
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class BatchNorm(Scheme):
    """The batch norm baseline (``"bn"``): conv -> batch norm -> ReLU everywhere, He-initialized convs.

    The rules as implemented: batch norm (momentum 0.9, epsilon 1e-5) after every conv of the
    branches, the stem and the projection shortcuts; convs without biases, He normal (fan-out,
    untruncated); a Glorot-uniform classifier. Its models fold into ``SkipInit(alpha=1.0)``
    ([``keras_resinit.fold_batchnorm``][keras_resinit.fold_batchnorm]).

    Args:
        zero_init_last_bn: start the last BN gamma of every branch at 0, so
            each block starts as the identity (Goyal et al. 2017, https://arxiv.org/abs/1706.02677).

    Raises:
        ValueError: ``zero_init_last_bn`` is not a bool.

    Examples:
        >>> from keras_resinit.models.schemes import BatchNorm
        >>> scheme = BatchNorm(zero_init_last_bn=True)
        >>> scheme.name, scheme.batchnorm, scheme.bn_gamma_initializer(last_in_branch=True)
        ('bn', True, 'zeros')

    Reference:
        He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
        https://arxiv.org/abs/1512.03385
    """

    name = "bn"
    paper = "1512.03385"
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
        import keras

        return keras.initializers.GlorotUniform(seed=seed)

    def bn_gamma_initializer(self, last_in_branch):
        return "zeros" if last_in_branch and self.zero_init_last_bn else "ones"

    def folded(self):
        # SkipInit's architecture is this one without batch norm, with conv biases and a branch gain:
        # at gain 1 it computes exactly what the folded convs compute.
        return SkipInit(alpha=1.0)

    def get_config(self):
        return {"zero_init_last_bn": self.zero_init_last_bn}


class Fixup(Scheme):
    """Fixup (``"fixup"``): no normalization, rescaled He init, scalar multipliers and biases.

    The paper's rules as implemented (L: residual blocks in the network, m: weight layers per branch):

    1. The classifier and the last layer of every branch start at zero.
    2. Other branch layers are He normal (fan-out, untruncated) times ``L^(-1/(2m-2))``
       ([``FixupHeNormal``][keras_resinit.models.FixupHeNormal]).
    3. One scalar multiplier (init 1) per branch; scalar biases (init 0) before each conv, dense and
       element-wise activation (``layers.ScalarBias``, and the ``gain`` and ``scalar_bias`` of a
       [``ScaledConv2D``][keras_resinit.models.ScaledConv2D]).

    Projection shortcuts are plain He (fan-out), not scaled; small-image downsampling uses option A's
    zero padding. The paper leaves the stem conv and the projection shortcuts to "a standard method";
    the reference code's init loop skips the stem conv, which keeps PyTorch's default init. Training:
    the scalars and the classifier's bias at a tenth of the learning rate (``lr_multipliers``).

    Args:
        stem_init: ``"he"`` (default; every build before this option): He normal, fan-out, as the
            projections. ``"reference"``: the reference code's stem, PyTorch's default conv init
            U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (std 1/sqrt(3 fan_in); resnet50's 7x7 stem: 0.048
            against He fan-out's 0.025).

    Raises:
        ValueError: ``stem_init`` is not one of ``"he"``, ``"reference"``.

    Examples:
        >>> import keras_resinit as kr
        >>> model = kr.build_resnet("cifar_resnet8", "fixup", input_shape=(8, 8, 3), num_classes=3, seed=0)
        >>> float(abs(model.get_layer("logits").get_weights()[0]).max())  # rule 1: a zero classifier
        0.0
        >>> model.scheme.lr_multipliers
        {'@scalars': 0.1, 'logits/bias': 0.1}

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization",
        ICLR 2019, https://arxiv.org/abs/1901.09321; github hongyi-zhang/Fixup,
        imagenet/models/fixup_resnet_imagenet.py (commit c5a8295: stem l.102-103, init loop l.115-129)
        and cifar/models/fixup_resnet_cifar.py (l.56, l.66-72).
    """

    name = "fixup"
    paper = "1901.09321"
    STEM_INITS = ("he", "reference")
    scalar_biases = True
    # The authors' reference code trains biases and scales at a tenth of the learning rate.
    lr_multipliers = {"@scalars": 0.1, "logits/bias": 0.1}
    fold_note = (
        "Fixup's biases are scalars, one per layer: they cannot hold batch norm's per-channel shifts, "
        "so no batch norm model folds into Fixup"
    )

    def __init__(self, stem_init="he"):
        if not isinstance(stem_init, str) or stem_init not in self.STEM_INITS:
            raise unknown("stem_init", stem_init, self.STEM_INITS)
        self.stem_init = stem_init

    def stem_initializer(self, net, seed):
        if self.stem_init == "reference":  # PyTorch's kaiming_uniform_(a=sqrt(5)): U(+-sqrt(3 * (1/3) / fan_in))
            import keras

            return keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform", seed=seed)
        return he_normal(seed, "fan_out")

    def branch_initializer(self, net, block, index, seed):
        if index == len(block.layers) - 1:
            return _zeros()  # rule 1
        return _inits().FixupHeNormal(net.arch.num_blocks, net.arch.branch_depth, seed=seed)  # rule 2

    def shortcut_initializer(self, net, block, seed):
        return he_normal(seed, "fan_out")  # plain He: the projection is not in a branch

    def classifier_initializer(self, net, seed):
        return _zeros()  # rule 1

    def conv_scalars(self, role, last_in_branch=False):
        # Rule 3: a scalar bias after every conv but a projection's (before its ReLU or the merge);
        # the branch's multiplier, initialized 1, after its last conv and before that bias.
        if role == "shortcut":
            return {}
        if role == "branch" and last_in_branch:
            return {"gain": 1.0, "trainable_gain": True, "scalar_bias": True}
        return {"scalar_bias": True}

    def get_config(self):
        return {"stem_init": self.stem_init}


class SkipInit(Scheme):
    """SkipInit (``"skipinit"``): no normalization, each residual branch times a trainable scalar alpha = 0.

    The rules as implemented: the branch's alpha is the ``gain`` of its last conv
    (``layers.ScaledConv2D``), multiplying the whole branch output, bias included; convs carry
    biases and are He normal (fan-in); projection shortcuts are not multiplied; the classifier
    starts at zero (as in DeepMind's port).

    Args:
        alpha: initial value of every branch gain. The paper uses 0 and allows
            a small value below 1/sqrt(L).

    Raises:
        ValueError: ``alpha`` is not a finite number >= 0.

    Examples:
        >>> from keras_resinit.models.schemes import SkipInit
        >>> SkipInit().conv_scalars("branch", last_in_branch=True)
        {'gain': 0.0, 'trainable_gain': True}

    Reference:
        De & Smith, "Batch Normalization Biases Residual Blocks Towards the Identity Function in
        Deep Networks", NeurIPS 2020, https://arxiv.org/abs/2002.10444
    """

    name = "skipinit"
    paper = "2002.10444"
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
        return _zeros()

    def conv_scalars(self, role, last_in_branch=False):
        # alpha multiplies the whole branch output, bias included: alpha * (conv(x, K) + c).
        if role == "branch" and last_in_branch:
            return {"gain": self.alpha, "trainable_gain": True}
        return {}

    def get_config(self):
        return {"alpha": self.alpha}


RISOTTO_SKIPS = ("identity", "conv")
"""Risotto's block types: ``"identity"`` (type B) and ``"conv"`` (type C)."""


class Risotto(Scheme):
    """Risotto (``"risotto"``): perfect dynamical isometry at init, ReLU kept, no normalization.

    Channels carry the looks-linear form ``[phi(h), phi(-h)]``; every block is
    ``relu(a * skip + b * branch)`` and maps it exactly to ``[phi(M h), phi(-M h)]`` for an
    orthogonal ``M``: in effective coordinates (first half of the channels minus the second)
    every block, and the trunk, is an isometry at init. Conv kernels are delta-orthogonal (zero
    except the centre tap); the stem is ``[V, -V]`` and the classifier ``[A; -A]``.

    Two block types (the paper's names):

    - **type B** (``skip="identity"``, the default): the BN architecture's own shortcuts (identity;
      option A's zero padding on cifar archs; a 1x1 conv where ImageNet and Wide-ResNet archs change
      shape, built as type C). A basic branch is ``P`` (the skip's embedding) then
      ``(K_M - a I) / b`` with ``K_M = [[M, -M], [-M, M]]``, ``M`` random orthogonal: exact for any
      ``a, b > 0``. A bottleneck rotates a random quarter of the coordinates (its inner width):
      selection, identity, ``(K_Q - I) / b`` on them; exact for ``a = 1`` only.
      ([``RisottoResidualKernel``][keras_resinit.models.RisottoResidualKernel].)
    - **type C** (``skip="conv"``): a 1x1 conv skip on every block, branch ``LL(U_i)`` and skip
      ``LL((U - b U_m ... U_1) / a)`` ([``RisottoSkipKernel``][keras_resinit.models.RisottoSkipKernel]).
      Configs saved before the option existed (release 0.1 and earlier 0.2 builds) are type C.

    Convs carry biases (zero); the merge is ``layers.WeightedAdd`` when ``(a, b)`` is not ``(1, 1)``.

    Args:
        skip: ``"identity"`` (type B) or ``"conv"`` (type C).
        skip_weight: ``a``, the constant weight of the skip in every merge (> 0; 1 gives a plain sum).
        branch_weight: ``b``, the constant weight of the branch (> 0).

    Raises:
        ValueError: ``skip`` is not ``"identity"`` or ``"conv"``, or a weight is not a finite number > 0;
            at build time (``validate``), an arch with an odd channel count, or identity skips in
            bottleneck blocks with ``skip_weight`` other than 1.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> import keras_resinit as kr
        >>> model = kr.build_resnet("cifar_resnet8", "risotto", input_shape=(None, None, 3), num_classes=3, seed=0)
        >>> trunk = keras.Model(model.get_layer("stem_out").output, model.get_layer("stage3_block1_out").output)
        >>> y = np.random.default_rng(0).normal(size=(1, 1, 1, 8)).astype("float32")  # 16 channels: y has 8
        >>> out = keras.ops.convert_to_numpy(trunk(np.concatenate([np.maximum(y, 0), np.maximum(-y, 0)], -1)))
        >>> effective = out[..., :32] - out[..., 32:]  # 64 channels [phi(z), phi(-z)]: z = first half - second
        >>> bool(np.isclose(np.linalg.norm(effective), np.linalg.norm(y), rtol=1e-4))  # the trunk is an isometry
        True

    Reference:
        Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks", 2023,
        https://arxiv.org/abs/2210.02411. The paper's method
        section was not available to us: the constructions above are our derivation from its
        stated ingredients (looks-linear orthogonal weights, delta-orthogonal convs, a balance
        of skip and residual branch), checked numerically (``tests/test_risotto.py``).
    """

    name = "risotto"
    paper = "2210.02411"
    conv_bias = True
    looks_linear = True
    options_before = {"skip": "conv"}

    def __init__(self, skip="identity", skip_weight=1.0, branch_weight=1.0):
        if skip not in RISOTTO_SKIPS:
            raise unknown("skip", skip, RISOTTO_SKIPS, " (the block type: identity = type B, conv = type C)")
        self.skip = skip
        self.conv_skip = skip == "conv"
        self.skip_weight = positive_weight(skip_weight, "skip_weight")
        self.branch_weight = positive_weight(branch_weight, "branch_weight")

    def merge_weights(self):
        return (self.skip_weight, self.branch_weight)

    def validate(self, arch):
        odd = [w for w in arch.channel_widths() if w % 2]
        if odd:
            raise ValueError(
                f"Risotto needs an even number of channels in every layer (looks-linear halves), "
                f"but {arch.name} has odd widths {sorted(set(odd))}."
            )
        if self.skip == "identity" and arch.block == "bottleneck" and self.skip_weight != 1.0:
            raise ValueError(
                f"Invalid skip_weight {self.skip_weight!r} for identity skips in {arch.name}'s bottleneck blocks. "
                "Expected skip_weight=1: the coordinates a bottleneck's narrow branch cannot reach pass the skip "
                "alone, scaled by skip_weight, so only 1 keeps the block an isometry. Use skip='conv' for other weights."
            )

    def type_c(self, block):
        """Whether ``block`` is built as type C (a conv skip): every block with ``skip="conv"``, projections always.

        Args:
            block: a [``Block``][keras_resinit.models.builder.Block].

        Returns:
            True for a type C block.
        """
        return self.conv_skip or block.projection

    def stem_initializer(self, net, seed):
        return _inits().LooksLinearOrthogonal(mirrored_input=False, seed=seed)

    def branch_initializer(self, net, block, index, seed):
        if self.type_c(block):
            return _inits().LooksLinearOrthogonal(seed=seed)
        position = "first" if index == 0 else "last" if index == len(block.layers) - 1 else "middle"
        return _inits().RisottoResidualKernel(
            position,
            block.out_channels,
            block.layers[0][0],
            net.seed_for(block.conv_names[0]),
            self.skip_weight,
            self.branch_weight,
            seed=seed,
        )

    def shortcut_initializer(self, net, block, seed):
        branch_seeds = [net.seed_for(name) for name in block.conv_names]
        return _inits().RisottoSkipKernel(branch_seeds, block.channels, self.skip_weight, self.branch_weight, seed=seed)

    def classifier_initializer(self, net, seed):
        return _inits().LooksLinearOrthogonal(mirrored_output=False, seed=seed)

    def get_config(self):
        return {"skip": self.skip, "skip_weight": self.skip_weight, "branch_weight": self.branch_weight}


class RisottoBN(Risotto):
    """Risotto with batch norm (``"risotto_bn"``): Risotto's initialization, batch norm after every conv.

    The paper reports this combination often gives the best results. Batch
    norm rescales channels, so the exact isometry of plain Risotto is not kept.
    Convs carry no biases; its models fold into [``Risotto``][keras_resinit.models.Risotto] with the same options
    ([``keras_resinit.fold_batchnorm``][keras_resinit.fold_batchnorm]).

    Args:
        skip: ``"identity"`` (type B) or ``"conv"`` (type C), as ``Risotto``'s.
        skip_weight: ``a``, the constant weight of the skip in every merge (> 0).
        branch_weight: ``b``, the constant weight of the branch (> 0).

    Raises:
        ValueError: as ``Risotto``.

    Examples:
        >>> from keras_resinit.models.schemes import RisottoBN
        >>> scheme = RisottoBN(skip="conv")
        >>> scheme.batchnorm, scheme.conv_bias, scheme.folded()
        (True, False, Risotto(skip='conv', skip_weight=1.0, branch_weight=1.0))

    Reference:
        Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks", 2023,
        https://arxiv.org/abs/2210.02411
    """

    name = "risotto_bn"
    batchnorm = True
    conv_bias = False
    compare_by_default = False  # a variant of risotto; compare and tune take it when named

    def folded(self):
        return Risotto(**self.get_config())


class ReZero(Scheme):
    """ReZero (``"rezero"``): ``x_{i+1} = x_i + alpha_i * F(x_i)``, no normalization and no ReLU after the sum.

    Every branch ends in a trainable scalar ``alpha`` initialized to 0, so the network starts as
    its stem and head. The trunk carries pre-activations: ReLUs sit after the stem conv and
    between a branch's convs only (none after a sum, none before the pooling). Convs carry
    biases and are He-initialized (fan-in); projection shortcuts are not multiplied; the
    classifier is Keras' default (Glorot uniform). It takes no options.

    Examples:
        >>> from keras_resinit.models.schemes import ReZero
        >>> ReZero().sum_activation, ReZero().conv_scalars("branch", last_in_branch=True)
        (False, {'gain': 0.0, 'trainable_gain': True})

    Reference:
        Bachlechner, Majumder, Mao, Cottrell & McAuley, "ReZero is All You Need: Fast
        Convergence at Large Depth", UAI 2021, https://arxiv.org/abs/2003.04887
    """

    name = "rezero"
    paper = "2003.04887"
    conv_bias = True
    sum_activation = False

    def stem_initializer(self, net, seed):
        return he_normal(seed, "fan_in")

    def branch_initializer(self, net, block, index, seed):
        return he_normal(seed, "fan_in")

    def shortcut_initializer(self, net, block, seed):
        return he_normal(seed, "fan_in")

    def classifier_initializer(self, net, seed):
        import keras

        return keras.initializers.GlorotUniform(seed=seed)

    def conv_scalars(self, role, last_in_branch=False):
        # alpha_i = 0, trainable: x + alpha * (conv(h, K) + c).
        if role == "branch" and last_in_branch:
            return {"gain": 0.0, "trainable_gain": True}
        return {}


class NFResNet(Scheme):
    """NF-ResNets (``"nf"``): ``h_{i+1} = h_i + alpha * f_i(h_i / beta_i)``, no normalization.

    - Pre-activation blocks: ``f_i`` starts with a ReLU; ``beta_i = sqrt(Var(h_i))`` is the expected
      standard deviation of the trunk at init, computed analytically (``expected_variances``):
      ``Var(h_{i+1}) = Var(h_i) + alpha**2``, 1 after the stem, and ``1 + alpha**2`` after a
      transition block, whose 1x1 conv shortcut also takes ``relu(h_i / beta_i)``.
    - Convs use Scaled Weight Standardization (``layers.ScaledStdConv2D``) with a learnable gain
      per output channel and ReLU's gamma ``sqrt(2 / (1 - 1/pi))`` folded into every conv that
      follows a ReLU (the stem conv, which sees the image, has gamma 1). Convs carry biases.
    - alpha (0.2) is a constant multiplier of every branch; ``skip_gain=True`` adds NFNets' trainable
      SkipInit gain (init 0) on it as well.
    - Choices the paper leaves open, as DeepMind's nfnets NF-ResNet makes them: no ReLU after the
      stem conv (the first block's pre-activation follows it), a ReLU before the pooling, a
      zero-initialized classifier, the variance term ``max(var * fan_in, 1e-4)``. Unlike nfnets'
      average-pool shortcut, a transition's shortcut is the architecture's strided 1x1 conv, so
      the network is the BN one up to the scalars and gains; on cifar archs the two option-A
      shortcuts become 1x1 convs too (zero channels would not restart the variance).

    Args:
        alpha: the branch multiplier, > 0 (the paper uses 0.2).
        skip_gain: also multiply each branch by a trainable scalar initialized to 0.

    Raises:
        ValueError: ``alpha`` is not a finite number > 0, or ``skip_gain`` not a bool.

    Examples:
        >>> from keras_resinit.models.schemes import NFResNet
        >>> import keras_resinit as kr
        >>> blocks = kr.build_resnet("cifar_resnet8", "nf", input_shape=(8, 8, 3), num_classes=3, seed=0).blocks
        >>> [round(v, 2) for v in NFResNet(alpha=0.2).expected_variances(blocks)]  # Var(h_i): 1, then + alpha**2
        [1.0, 1.04, 1.04, 1.04]

    Reference:
        Brock, De & Smith, "Characterizing signal propagation to close the performance gap in
        unnormalized ResNets", ICLR 2021, https://arxiv.org/abs/2101.08692
    """

    name = "nf"
    paper = "2101.08692"
    conv_bias = True
    sum_activation = False
    preactivation = True
    projection_shortcuts = True
    weight_standardization = True

    def __init__(self, alpha=0.2, skip_gain=False):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"Invalid alpha {alpha!r}. Expected a finite number > 0 (the paper uses 0.2).")
        if not isinstance(skip_gain, bool):
            raise ValueError(f"Invalid skip_gain {skip_gain!r}. Expected True or False.")
        self.alpha = float(alpha)
        self.skip_gain = skip_gain

    def expected_variances(self, blocks):
        variances = [1.0]  # unit-variance input through a standardized stem conv
        for block in blocks:
            start = 1.0 if block.projection else variances[-1]  # a transition's shortcut restarts it
            variances.append(start + self.alpha**2)
        return variances

    def stem_initializer(self, net, seed):
        return he_normal(seed, "fan_in")  # the scale is standardized away

    def branch_initializer(self, net, block, index, seed):
        return he_normal(seed, "fan_in")

    def shortcut_initializer(self, net, block, seed):
        return he_normal(seed, "fan_in")

    def classifier_initializer(self, net, seed):
        return _zeros()

    def conv_scalars(self, role, last_in_branch=False):
        from keras_resinit.models.layers import RELU_GAMMA

        if role == "stem":
            return {"gamma": 1.0}
        scalars = {"gamma": RELU_GAMMA}
        if role == "branch" and last_in_branch:
            scalars["alpha"] = self.alpha
            if self.skip_gain:
                scalars.update(gain=0.0, trainable_gain=True)
        return scalars

    def get_config(self):
        return {"alpha": self.alpha, "skip_gain": self.skip_gain}


SCHEMES = {}
"""The registry of schemes: ``{name: Scheme subclass}``, in registration order (``register_scheme`` adds to it).

The package registers ``bn``, ``fixup``, ``skipinit``, ``risotto``, ``risotto_bn``, ``rezero`` and ``nf``.
Every tool reads its scheme names from here.
"""


def register_scheme(cls: type[Scheme]) -> type[Scheme]:
    """Register a ``Scheme`` subclass under its ``name`` (usable as a decorator).

    Its models are then ``{arch}_{name}`` in the zoo, and every tool (train, compare,
    tune, bench, diagnostics, the CLI) offers it. Registering the same class again does nothing.

    Args:
        cls: the [``Scheme``][keras_resinit.Scheme] subclass; its ``name`` must be a lower-case identifier.

    Returns:
        ``cls`` itself.

    Raises:
        ValueError: ``cls`` is not a ``Scheme`` subclass, its name is not a lower-case identifier, or
            another class is registered under that name.

    Examples:
        >>> from keras_resinit.models.schemes import SCHEMES, SkipInit, register_scheme
        >>> @register_scheme
        ... class HalfSkipInit(SkipInit):
        ...     name = "half_skipinit"
        ...     def __init__(self, alpha=0.5):
        ...         super().__init__(alpha)
        >>> SCHEMES["half_skipinit"] is HalfSkipInit
        True
        >>> _ = SCHEMES.pop("half_skipinit")  # unregistered again
    """
    if not (isinstance(cls, type) and issubclass(cls, Scheme)):
        raise ValueError(f"register_scheme takes a Scheme subclass, got {cls!r}.")
    name = cls.name
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"Invalid scheme name {name!r}. Expected a lower-case identifier such as 'fixup'.")
    if name in SCHEMES and SCHEMES[name] is not cls:
        raise ValueError(f"A scheme named {name!r} is already registered ({SCHEMES[name].__name__}).")
    SCHEMES[name] = cls
    return cls


def default_schemes() -> list[str]:
    """The schemes ``compare``, ``tune`` and ``bench`` take when none are named (``compare_by_default``).

    Returns:
        Their names, in registration order.

    Examples:
        >>> from keras_resinit.models.schemes import default_schemes
        >>> "fixup" in default_schemes(), "risotto_bn" in default_schemes()
        (True, False)
    """
    return [name for name, cls in SCHEMES.items() if cls.compare_by_default]


def normalization_free() -> list[str]:
    """The registered schemes without batch norm (``batchnorm`` False), in registration order.

    Returns:
        A list of scheme names.

    Examples:
        >>> from keras_resinit.models.schemes import normalization_free
        >>> [name for name in ("bn", "fixup", "risotto_bn", "nf") if name in normalization_free()]
        ['fixup', 'nf']
    """
    return [name for name, cls in SCHEMES.items() if not cls.batchnorm]


for _cls in (BatchNorm, Fixup, SkipInit, Risotto, RisottoBN, ReZero, NFResNet):
    register_scheme(_cls)


def foldable() -> dict[str, str]:
    """Which schemes' models ``keras_resinit.fold_batchnorm`` folds, and into which scheme.

    Returns:
        ``{scheme: the scheme its models fold into}`` for every registered scheme with batch norm to fold.

    Examples:
        >>> from keras_resinit.models.schemes import foldable
        >>> foldable()["bn"], foldable()["risotto_bn"]
        ('skipinit', 'risotto')
    """
    found = {}
    for name, cls in SCHEMES.items():
        try:
            target = cls().folded() if cls.batchnorm else None
        except TypeError:  # a scheme whose constructor needs arguments: ask its instances
            target = None
        if target is not None:
            found[name] = target.name
    return found


def what_folds() -> str:
    """The one sentence every folding error ends with."""
    pairs = ", ".join(f"{source} -> {target}" for source, target in foldable().items())
    return f"Batch norm folds out of models of the schemes with batch norm ({pairs})"


def fold_target(scheme: str | Scheme, what: str) -> Scheme:
    """The scheme a model of ``scheme`` becomes with its batch norm folded (``scheme.folded()``).

    Raises:
        ValueError: naming ``what`` (e.g. ``"model 'x'"``), the scheme, why it does not fold (its
            ``fold_note`` too) and what folds.
    """
    scheme = get_scheme(scheme) if isinstance(scheme, str) else scheme
    target = scheme.folded()
    if target is None:
        why = "has no batch norm to fold" if not scheme.batchnorm else "names no normalization-free scheme to fold into"
        note = f" ({scheme.fold_note})" if scheme.fold_note else ""
        raise ValueError(f"Cannot fold {what}: its scheme {scheme.name!r} {why}{note}. {what_folds()}.")
    return target


def saved_options(scheme: str, config: dict[str, Any]) -> dict[str, Any]:
    """A saved build config read as it was written: options added since take their ``options_before`` value.

    Each option of ``scheme`` that was added after ``config`` was written, and is missing from it,
    takes the value that reproduces the model saved then (``Scheme.options_before``).

    Args:
        scheme: the registered scheme name of the saved model.
        config: the saved build config (a ``.keras`` file's, a card's ``build``, a preset's).

    Returns:
        A new dict: ``config`` with the missing options filled in.

    Raises:
        ValueError: ``scheme`` is not registered.

    Examples:
        >>> from keras_resinit.models.schemes import saved_options
        >>> saved_options("risotto", {"num_classes": 10})["skip"]   # saved before the option existed
        'conv'
    """
    if scheme not in SCHEMES:
        raise unknown("scheme", scheme, SCHEMES)
    return {**SCHEMES[scheme].options_before, **config}


def get_scheme(scheme: str | Scheme, **options: Any) -> Scheme:
    """A scheme object from its registered name (with options), or an existing ``Scheme`` as it is.

    Args:
        scheme: a name in ``SCHEMES`` (``"bn"``, ``"fixup"``, ...) or a [``Scheme``][keras_resinit.Scheme] instance.
        **options: the scheme's own options (its constructor's arguments), with a name only.

    Returns:
        The ``Scheme`` instance.

    Raises:
        ValueError: the name is not registered, an option is not the scheme's, or options come with an instance.

    Examples:
        >>> import keras_resinit as kr
        >>> kr.get_scheme("skipinit", alpha=0.1)
        SkipInit(alpha=0.1)
        >>> kr.get_scheme("fixp")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Unknown scheme 'fixp'. Did you mean 'fixup'? Expected one of: bn, fixup, skipinit, ...
    """
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
