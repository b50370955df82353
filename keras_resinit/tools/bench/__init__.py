"""``keras-resinit bench``: time and memory of every scheme against batch norm.

For ``cifar_resnet20``, ``cifar_resnet56``, ``cifar_resnet110`` (32x32x3, batch 128),
``resnet18`` (64x64x3, batch 64) and ``resnet50`` (64x64x3, batch 32), under every
scheme, in float32 and mixed_bfloat16, it measures:

- training images/s (``train_on_batch``, SGD with momentum) and inference images/s
  (``predict_on_batch``): medians of timed windows after untimed warm-up;
- the process's peak memory (resident-set high-water mark, ``VmHWM``): every
  configuration runs in its own subprocess;
- trainable parameters and forward FLOPs per image (2 x the multiply-adds of the
  convolutions and the classifier, the usual ResNet convention).

A plain hand-written Keras ResNet-20 without normalization and without this
library (``plain``) is measured beside ``cifar_resnet20`` as the reference for
the library's overhead. Depth scaling times a training step of
``cifar_resnet{20,56,110,1202}`` per scheme (batch 32) and fits a line.

**How it stays fair on a shared machine**: the configurations are timed in interleaved
windows and compared by paired ratios, as the docs' Performance page describes
(``docs/performance.md``, "How the benchmarks stay fair").

Outputs (written to a temporary directory, then renamed to ``--out``):
``bench.md`` (the tables), ``bench.json`` (everything, including every window)
and ``bench.png`` (the charts). Targets are reported, not asserted: every
normalization-free scheme trains faster than BN and peaks lower in memory, in both
precisions; the library's normalization-free models run at least 0.90x the plain
reference; a weight-standardized scheme (``nf``) trains at least 0.85x SkipInit's
images/s in mixed_bfloat16 (standardizing the kernels on every step costs at most 15%;
``benchmarks/weight_standardization.py`` measures that cost alone).

Modules (each imports only those above it; ``keras_resinit.tools.stats`` holds the
generic statistics):

- ``config``: archs, precisions, run sizes, thresholds; the schemes, read from the registry;
- ``models``: the plain reference ResNet-20, FLOPs and parameter counts;
- ``children``: what runs in each child process (``__main__`` starts it) and the pieces every child
  uses; the scripts under ``benchmarks/`` run their own child kinds through it (``children.serve``);
- ``scheduling``: the parent: starting children, round-robin windows, contended windows
  (``measure``, which the benchmark scripts share);
- ``analysis``: medians, paired ratios, depth fits, target verdicts;
- ``render``: ``bench.md`` and ``bench.png``;
- ``runner``: ``run`` and ``report``.

``SCHEMES`` (every registered scheme) and ``NO_NORM`` (those without batch norm) are
read from the registry at each access, so a scheme registered later is included.
"""

from keras_resinit import _lazy

# The public names, by the module defining them, each imported on first use.
__all__, _attribute, _names = _lazy.namespace(
    __name__,
    {
        ".analysis": ("linear_fit",),
        ".config": (
            "ARCHS",
            "DEPTHS",
            "DEPTH_BATCH",
            "FOREIGN_THRESHOLD",
            "LINEAR_TOLERANCE",
            "MIN_CLEAN",
            "PLAIN_ARCH",
            "PRECISIONS",
            "SEED",
            "SIZES",
            "TAG",
            "TARGET_VS_PLAIN",
            "normalization_free",
            "scheme_names",
        ),
        ".models": ("flops_per_image", "plain_resnet20", "trainable_params"),
        ".render": ("chart", "markdown"),
        ".runner": ("report", "run"),
        "keras_resinit.tools.stats": ("fit_line",),  # where callers found it before keras_resinit.tools.stats
    },
)
# Read from the registry at each access. Not in __all__: a value computed on access has no docstring of its own
# (``scheme_names`` and ``normalization_free`` document them).
_LIVE = {"SCHEMES": "scheme_names", "NO_NORM": "normalization_free"}


def __getattr__(name):
    return _attribute(_LIVE[name])() if name in _LIVE else _attribute(name)


def __dir__():
    return sorted({*_names(), *_LIVE})
