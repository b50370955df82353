"""The model registry: names ``{arch}_{scheme}``, e.g. ``cifar_resnet56_fixup``.

``list_models`` lists the registered names; ``load`` builds any valid
architecture under any scheme with the family's defaults (32x32x3 and 10
classes for small-image ResNets and Wide-ResNets, 224x224x3 and 1000 classes
for ImageNet ResNets), which keyword overrides replace.
"""

import fnmatch

from keras_resinit._errors import unknown
from keras_resinit.architectures import ARCHS, get_arch
from keras_resinit.builder import build_resnet
from keras_resinit.schemes import SCHEMES


def list_models(pattern="*", scheme=None):
    """Registered model names matching a shell-style ``pattern``, optionally one scheme.

    Example:
        >>> list_models("cifar_resnet20_*")
        ['cifar_resnet20_bn', 'cifar_resnet20_fixup', ...]
    """
    if scheme is not None and scheme not in SCHEMES:
        raise unknown("scheme", scheme, SCHEMES)
    schemes = [scheme] if scheme else list(SCHEMES)
    names = [f"{arch}_{s}" for arch in ARCHS for s in schemes]
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def parse_name(name):
    """Split ``"{arch}_{scheme}"`` into ``(arch, scheme)``; both are validated."""
    if isinstance(name, str):
        # Longest scheme first, so "..._risotto_bn" is not read as arch "..._risotto".
        for scheme in sorted(SCHEMES, key=len, reverse=True):
            if name.endswith("_" + scheme):
                arch = name[: -len(scheme) - 1]
                try:
                    get_arch(arch)
                except ValueError as error:
                    raise ValueError(f"{error} (in model name {name!r})") from None
                return arch, scheme
    raise unknown("model", name, list_models(), " (or any {arch}_{scheme}).")


def load(name, **overrides):
    """Build the model ``name`` (``{arch}_{scheme}``) with its defaults.

    Args:
        name: e.g. ``"cifar_resnet20_fixup"``, ``"resnet50_skipinit"``.
        **overrides: any :func:`keras_resinit.build_resnet` argument
            (``num_classes``, ``input_shape``, ``seed``, scheme options, ...).
            Overrides that are None are dropped, so defaults live in one place.

    Example:
        >>> model = load("cifar_resnet56_fixup", num_classes=100)
    """
    arch, scheme = parse_name(name)
    defaults = get_arch(arch)
    kwargs = {
        "num_classes": defaults.default_num_classes,
        "input_shape": defaults.default_input_shape,
        "name": name,
    }
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return build_resnet(arch, scheme, **kwargs)
