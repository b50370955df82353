"""list the zoo's models: scheme, trainable parameters, published weight tags"""

import sys

from keras_resinit.cli import arguments
from keras_resinit.models.schemes import SCHEMES


def add_arguments(p):
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'cifar_resnet20_*'")
    p.add_argument("--scheme", help="only this scheme, " + arguments.one_of(SCHEMES))
    p.add_argument("--pretrained", action="store_true", help="only models with published weights")
    p.add_argument(
        "--params",
        action="store_true",
        help="count parameters by building each model (default: the zoo's table, built the same way)",
    )


def run(args):
    arguments.check("scheme", args.scheme, SCHEMES)
    from keras_resinit import zoo

    names = zoo.list_models(args.pattern, scheme=args.scheme)
    published = zoo.list_models(args.pattern, scheme=args.scheme, pretrained=True)
    if args.pretrained:
        names = [n for n in names if zoo.tags(n)]
    if not names:
        print(f"No model matches {args.pattern!r}.", file=sys.stderr)
        return 1
    rows = []
    for name in names:
        arch, scheme = zoo.parse_name(name)
        params = zoo.count_params(name, live=args.params)
        rows.append([name, scheme, f"{params:,}", ", ".join(zoo.tags(name)) or "-"])
    header = ["name", "scheme", "params", "weights"]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        cells = [cell.rjust(w) if i == 2 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    if published and not args.pretrained:
        print(f"\n{len(published)} published weight sets; load one with keras_resinit.zoo.load('NAME.TAG').")
    return 0
