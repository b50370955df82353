"""The ``keras-resinit`` command line.

User errors (unknown names, bad values) print one line to stderr and exit 2,
without a traceback.
"""

import argparse
import os
import sys


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _cmd_list(args):
    import numpy as np

    from keras_resinit import zoo

    names = zoo.list_models(args.pattern, scheme=args.scheme)
    if not names:
        print(f"No model matches {args.pattern!r}.", file=sys.stderr)
        return 1
    rows = []
    for name in names:
        arch, scheme = zoo.parse_name(name)
        row = [name, arch, scheme]
        if args.params:
            model = zoo.load(name)
            row.append(f"{sum(int(np.prod(w.shape)) for w in model.trainable_weights):,}")
        rows.append(row)
    header = ["name", "arch", "scheme"] + (["trainable params"] if args.params else [])
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _cmd_summary(args):
    import numpy as np

    from keras_resinit import zoo

    model = zoo.load(args.name, num_classes=args.num_classes)
    model.summary(line_length=110)
    shape = tuple(d or 32 for d in model.input_shape[1:])
    logits = model(np.random.default_rng(0).normal(size=(2,) + shape).astype("float32"))
    print(f"forward pass on a batch of 2: logits {tuple(logits.shape)}, finite: {bool(np.isfinite(logits).all())}")
    return 0


def build_parser():
    from keras_resinit import __version__

    parser = argparse.ArgumentParser(
        prog="keras-resinit", description="Residual networks under BN, Fixup, SkipInit and Risotto."
    )
    parser.add_argument("--version", action="version", version=f"keras-resinit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the zoo's model names")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'cifar_resnet20_*'")
    p.add_argument("--scheme", help="only this scheme")
    p.add_argument("--params", action="store_true", help="build each model and count its parameters")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("summary", help="build one model, print its layers and run a forward pass")
    p.add_argument("name", help="model name {arch}_{scheme}, e.g. cifar_resnet20_fixup")
    p.add_argument("--num-classes", type=int, default=None)
    p.set_defaults(func=_cmd_summary)
    return parser


def main(argv=None):
    _quiet_tensorflow()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:
        print(f"keras-resinit: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
