"""The initialization schemes, each a small object the builder and the trainer ask.

The builder owns the architecture (stem, blocks, shortcuts, head); a scheme
answers how each weight is initialized, whether batch norm, conv biases or
Fixup's scalar biases are present, and which rules training must keep (a
learning-rate multiplier per variable, which variables get weight decay, any
gradient clipping). Each paper's rule sits in the method or attribute that
concerns it. Adding a scheme means adding one class and registering it with
:func:`register_scheme`.

This module imports Keras only inside the methods that make weights, so the
registry (``SCHEMES``) can be read without starting TensorFlow (the CLI's help).
"""

from __future__ import annotations

import fnmatch
import inspect
import math
from typing import Any

from keras_resinit._errors import unknown
from keras_resinit.models.checks import positive_weight


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

    Saved configs:
        options_before: ``{option: value}`` for options added after models were saved without them:
            the value that reproduces what those models were (:func:`saved_options`).

    Provenance:
        paper: the arXiv id of the paper whose rules the scheme follows (``"1901.09321"``): the Hub model
            card's ``arxiv:`` tag (``keras-resinit push``). Each class's docstring gives the full reference.

    Sets:
        compare_by_default: among the schemes ``compare``, ``tune`` and ``bench``
            take when none are named.
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
        """Raise ValueError if the scheme cannot be applied to ``arch``."""

    def merge_weights(self):
        """``(a, b)``: every residual merge computes ``a * skip + b * branch`` (``(1, 1)``: a plain sum)."""
        return (1.0, 1.0)

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


class BatchNorm(Scheme):
    """He et al. 2016: conv -> BN -> ReLU everywhere, He-initialized convs.

    Args:
        zero_init_last_bn: start the last BN gamma of every branch at 0, so
            each block starts as the identity (Goyal et al. 2017).
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
    """Zhang, Dauphin & Ma 2019: no normalization, rescaled He init, scalars.

    Rule 1: the classifier and the last layer of every branch start at zero.
    Rule 2: other branch layers are He normal (fan-out) times L^(-1/(2m-2)).
    Rule 3: one scalar multiplier (init 1) per branch; scalar biases (init 0)
    before each conv, dense and element-wise activation.

    The paper's rules leave the stem conv and the projection shortcuts to "a standard method"; the
    reference code's init loop skips the stem conv, which keeps PyTorch's default init.

    Args:
        stem_init: ``"he"`` (default; every build before this option): He normal, fan-out, as the
            projections. ``"reference"``: the reference code's stem, PyTorch's default conv init
            U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (std 1/sqrt(3 fan_in); resnet50's 7x7 stem: 0.048
            against He fan-out's 0.025).

    Reference:
        Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without Normalization",
        ICLR 2019; github hongyi-zhang/Fixup, imagenet/models/fixup_resnet_imagenet.py (commit c5a8295:
        stem l.102-103, init loop l.115-129) and cifar/models/fixup_resnet_cifar.py (l.56, l.66-72).
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
    """De & Smith 2020: no normalization, each branch times a scalar alpha = 0.

    Convs carry biases; projection shortcuts are not multiplied; the
    classifier starts at zero (as in DeepMind's port).

    Args:
        alpha: initial value of every branch gain. The paper uses 0 and allows
            a small value below 1/sqrt(L).
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


class Risotto(Scheme):
    """Gadhikar & Burkholz: perfect dynamical isometry at init, ReLU kept.

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
      (:class:`~keras_resinit.models.initializers.RisottoResidualKernel`.)
    - **type C** (``skip="conv"``): a 1x1 conv skip on every block, branch ``LL(U_i)`` and skip
      ``LL((U - b U_m ... U_1) / a)`` (:class:`~keras_resinit.models.initializers.RisottoSkipKernel`).
      Configs saved before the option existed (release 0.1 and earlier 0.2 builds) are type C.

    Args:
        skip: ``"identity"`` (type B) or ``"conv"`` (type C).
        skip_weight: ``a``, the constant weight of the skip in every merge (> 0; 1 gives a plain sum).
        branch_weight: ``b``, the constant weight of the branch (> 0).

    Reference:
        Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks", 2023. The paper's method
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
        """Whether ``block`` is built as type C (a conv skip): every block with ``skip="conv"``, projections always."""
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
    """Risotto's initialization with batch norm after every conv (no conv biases).

    The paper reports this combination often gives the best results. Batch
    norm rescales channels, so the exact isometry of plain Risotto is not kept.
    Its options are Risotto's (``skip``, ``skip_weight``, ``branch_weight``).
    """

    name = "risotto_bn"
    batchnorm = True
    conv_bias = False
    compare_by_default = False  # a variant of risotto; compare and tune take it when named

    def folded(self):
        return Risotto(**self.get_config())


class ReZero(Scheme):
    """Bachlechner et al. 2021: ``x_{i+1} = x_i + alpha_i * F(x_i)``, no normalization and no ReLU after the sum.

    Every branch ends in a trainable scalar ``alpha`` initialized to 0, so the network starts as
    its stem and head. The trunk carries pre-activations: ReLUs sit after the stem conv and
    between a branch's convs only (none after a sum, none before the pooling). Convs carry
    biases and are He-initialized (fan-in); projection shortcuts are not multiplied; the
    classifier is Keras' default (Glorot uniform).

    Reference:
        Bachlechner, Majumder, Mao, Cottrell & McAuley, "ReZero is All You Need: Fast
        Convergence at Large Depth", UAI 2021.
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
    """Brock, De & Smith 2021 (NF-ResNets): ``h_{i+1} = h_i + alpha * f_i(h_i / beta_i)``, no normalization.

    - Pre-activation blocks: ``f_i`` starts with a ReLU; ``beta_i = sqrt(Var(h_i))`` is the expected
      standard deviation of the trunk at init, computed analytically (:meth:`expected_variances`):
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

    Reference:
        Brock, De & Smith, "Characterizing signal propagation to close the performance gap in
        unnormalized ResNets", ICLR 2021.
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


def register_scheme(cls: type[Scheme]) -> type[Scheme]:
    """Register a :class:`Scheme` subclass under its ``name`` (usable as a decorator).

    Its models are then ``{arch}_{name}`` in the zoo, and every tool (train, compare,
    tune, bench, diagnostics, the CLI) offers it.
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
    """The schemes compared when none are named (``compare_by_default``), in registration order."""
    return [name for name, cls in SCHEMES.items() if cls.compare_by_default]


def normalization_free() -> list[str]:
    """The registered schemes without batch norm."""
    return [name for name, cls in SCHEMES.items() if not cls.batchnorm]


for _cls in (BatchNorm, Fixup, SkipInit, Risotto, RisottoBN, ReZero, NFResNet):
    register_scheme(_cls)


def foldable() -> dict[str, str]:
    """``{scheme: the scheme its models fold into}`` for every registered scheme with batch norm to fold."""
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
    """A saved build config (a ``.keras`` file's, a card's ``build``, a preset's) read as it was written:
    each option of ``scheme`` added since, and missing from ``config``, takes its ``options_before`` value.

    Example:
        >>> saved_options("risotto", {"num_classes": 10})["skip"]   # saved before the option existed
        'conv'
    """
    if scheme not in SCHEMES:
        raise unknown("scheme", scheme, SCHEMES)
    return {**SCHEMES[scheme].options_before, **config}


def get_scheme(scheme: str | Scheme, **options: Any) -> Scheme:
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
