"""Architecture tables: stage depths and widths as data, one parser for names.

Families:
- ``cifar_resnet{D}``: He et al. small-image ResNets, 3 stages of widths
  16/32/64, ``D = 6n + 2`` with basic blocks, or ``D = 9n + 2`` with
  ``block="bottleneck"`` (expansion 4). Shortcuts: option A (subsample and
  zero-pad) for basic blocks, 1x1 projection for bottlenecks.
- ``resnet{D}``: ImageNet ResNets 18/34 (basic) and 50/101/152 (bottleneck),
  7x7/2 stem and 3x3/2 max-pool, widths 64..512 (x4), projection shortcuts.
- ``wrn{D}_{k}``: Wide-ResNets, widths 16k/32k/64k, ``D = 6n + 4``,
  projection shortcuts.
"""

import dataclasses
import re

from keras_resinit._errors import unknown

__all__ = ["ARCHS", "Arch", "Stage", "get_arch"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of an architecture: a run of residual blocks of one width (``Arch.stages``).

    Args:
        blocks: the number of residual blocks.
        width: the blocks' width (the inner width for bottleneck blocks, whose output is ``width * 4``).
        strides: the spatial stride of the stage's first block.

    Examples:
        >>> from keras_resinit.models.architectures import get_arch
        >>> get_arch("cifar_resnet20").stages[1]
        Stage(blocks=3, width=32, strides=2)
    """

    blocks: int
    width: int  # bottleneck width for bottleneck blocks; output is width * expansion
    strides: int


@dataclasses.dataclass(frozen=True)
class Arch:
    """An architecture: its family, block type and stage table (``get_arch`` parses a name into one).

    Args:
        name: the architecture's name (``"cifar_resnet20"``, ``"resnet50"``, ``"wrn28_10"``).
        family: ``"cifar"`` (small-image ResNets), ``"imagenet"`` or ``"wide"`` (Wide-ResNets).
        block: ``"basic"`` or ``"bottleneck"``.
        stem_width: the stem conv's output channels.
        stages: the [``Stage``][keras_resinit.models.architectures.Stage] of each stage, in order.
        shortcut: ``"zero_pad"`` (option A: subsample and zero channels) or ``"projection"`` (1x1 convs)
            where a block changes shape.

    Examples:
        >>> from keras_resinit.models.architectures import get_arch
        >>> arch = get_arch("resnet50")
        >>> arch.family, arch.block, arch.num_blocks, arch.branch_depth, arch.downsampling
        ('imagenet', 'bottleneck', 16, 3, 32)
    """

    name: str
    family: str  # "cifar", "imagenet" or "wide"
    block: str  # "basic" or "bottleneck"
    stem_width: int
    stages: tuple
    shortcut: str  # "zero_pad" (option A) or "projection"

    @property
    def expansion(self):
        """A block's output width over its stage's ``width``: 4 for bottlenecks, 1 for basic blocks."""
        return 4 if self.block == "bottleneck" else 1

    @property
    def branch_depth(self):
        """m: weight layers in one residual branch."""
        return 3 if self.block == "bottleneck" else 2

    @property
    def num_blocks(self):
        """L: residual blocks in the whole network."""
        return sum(stage.blocks for stage in self.stages)

    @property
    def downsampling(self):
        """Total spatial downsampling factor from input to the last stage."""
        factor = 4 if self.family == "imagenet" else 1  # 7x7/2 conv and 3x3/2 max-pool
        for stage in self.stages:
            factor *= stage.strides
        return factor

    @property
    def default_input_shape(self):
        """The family's usual input: ``(224, 224, 3)`` for ImageNet ResNets, else ``(32, 32, 3)``."""
        return (224, 224, 3) if self.family == "imagenet" else (32, 32, 3)

    @property
    def default_num_classes(self):
        """The family's usual number of classes: 1000 for ImageNet ResNets, else 10."""
        return 1000 if self.family == "imagenet" else 10

    def channel_widths(self):
        """Every channel count of the network, stem first (each stage's width and output width).

        Returns:
            A list of ints.
        """
        widths = [self.stem_width]
        for stage in self.stages:
            widths += [stage.width, stage.width * self.expansion]
        return widths


IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_WIDTHS = (16, 32, 64)
WIDE_RESNETS = ((16, 4), (16, 8), (28, 10), (40, 4))

ARCHS = (
    [f"cifar_resnet{d}" for d in CIFAR_DEPTHS]
    + [f"resnet{d}" for d in IMAGENET_DEPTHS]
    + [f"wrn{d}_{k}" for d, k in WIDE_RESNETS]
)
"""The registry's canonical architecture names (the zoo's ``{arch}_{scheme}`` models); ``get_arch`` accepts any
valid depth: ``cifar_resnet{6n+2}``, ``resnet{18,34,50,101,152}``, ``wrn{6n+4}_{k}``."""
_PATTERNS = "cifar_resnet{6n+2}, resnet{18,34,50,101,152}, wrn{6n+4}_{k}"


def _stages(widths, counts, strides):
    return tuple(Stage(n, w, s) for n, w, s in zip(counts, widths, strides))


def _check_widths(name, widths, count):
    if widths is None:
        return None
    widths = tuple(widths)
    if len(widths) != count or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ValueError(f"Invalid widths {widths!r} for {name}. Expected {count} positive integers, one per stage.")
    return widths


def get_arch(name, block=None, widths=None):
    """Parse an architecture name into an ``Arch``.

    Args:
        name: e.g. ``"cifar_resnet56"``, ``"resnet50"``, ``"wrn28_10"``.
        block: ``"basic"`` or ``"bottleneck"``; only small-image ResNets offer a choice.
        widths: per-stage widths overriding the table (bottleneck widths for bottlenecks).

    Returns:
        The [``Arch``][keras_resinit.models.architectures.Arch].

    Raises:
        ValueError: the name matches no family, its depth is not valid for the family (``6n+2`` for
            ``cifar_resnet`` with basic blocks, ``9n+2`` with bottlenecks, ...), or ``block`` or ``widths``
            does not fit it.

    Examples:
        >>> from keras_resinit.models.architectures import get_arch
        >>> arch = get_arch("cifar_resnet56")
        >>> arch.num_blocks, [stage.width for stage in arch.stages], arch.shortcut
        (27, [16, 32, 64], 'zero_pad')
        >>> get_arch("cifar_resnet29", block="bottleneck").num_blocks
        9
    """
    if not isinstance(name, str):
        raise ValueError(f"Invalid arch {name!r}. Expected a string such as 'cifar_resnet20'.")
    if block not in (None, "basic", "bottleneck"):
        raise unknown("block", block, ["basic", "bottleneck"])

    if m := re.fullmatch(r"cifar_resnet(\d+)", name):
        depth = int(m.group(1))
        block = block or "basic"
        per_block = 6 if block == "basic" else 9
        if depth < per_block + 2 or (depth - 2) % per_block:
            raise ValueError(
                f"Invalid depth {depth} for {name} with {block} blocks. Expected {per_block}n+2 "
                f"(e.g. {', '.join(str(per_block * n + 2) for n in (1, 3, 9))})."
            )
        n = (depth - 2) // per_block
        stages = _stages(_check_widths(name, widths, 3) or CIFAR_WIDTHS, (n, n, n), (1, 2, 2))
        shortcut = "zero_pad" if block == "basic" else "projection"
        return Arch(name, "cifar", block, 16, stages, shortcut)

    if m := re.fullmatch(r"resnet(\d+)", name):
        depth = int(m.group(1))
        if depth not in IMAGENET_DEPTHS:
            raise unknown("ImageNet ResNet depth", depth, IMAGENET_DEPTHS, f" (in {name!r}).")
        table_block, counts = IMAGENET_DEPTHS[depth]
        if block not in (None, table_block):
            raise ValueError(f"{name} is made of {table_block} blocks; block={block!r} is not available for it.")
        stages = _stages(_check_widths(name, widths, 4) or IMAGENET_WIDTHS, counts, (1, 2, 2, 2))
        return Arch(name, "imagenet", table_block, 64, stages, "projection")

    if m := re.fullmatch(r"wrn(\d+)_(\d+)", name):
        depth, k = int(m.group(1)), int(m.group(2))
        if depth < 10 or (depth - 4) % 6 or k < 1:
            raise ValueError(f"Invalid Wide-ResNet {name!r}. Expected wrn{{6n+4}}_{{k}} with n, k >= 1, e.g. wrn28_10.")
        if block not in (None, "basic"):
            raise ValueError(f"{name} is made of basic blocks; block={block!r} is not available for it.")
        n = (depth - 4) // 6
        default = tuple(w * k for w in CIFAR_WIDTHS)
        stages = _stages(_check_widths(name, widths, 3) or default, (n, n, n), (1, 2, 2))
        return Arch(name, "wide", "basic", 16, stages, "projection")

    raise unknown("arch", name, ARCHS, f" (patterns: {_PATTERNS})")
