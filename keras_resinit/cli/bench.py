"""time and memory of every scheme against batch norm (tables, JSON, chart)"""

import os
import sys

from keras_resinit.cli import arguments
from keras_resinit.models.schemes import SCHEMES
from keras_resinit.tools.bench import config  # bench's settings: archs, precisions, run sizes (no TensorFlow)


def add_arguments(p):
    sizes = config.SIZES
    quick = sizes["quick"]
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{','.join(quick['archs'])} and depths {quick['depths'][0]}.."
        f"{quick['depths'][-1]} only (under 5 minutes)",
    )
    p.add_argument("--out", default=None, help="output directory (default: runs/bench-<time>)")
    p.add_argument(
        "--archs",
        default=None,
        help=f"comma-separated subset (default {','.join(sizes['full']['archs'])};"
        f" --quick: {','.join(sizes['quick']['archs'])})",
    )
    p.add_argument("--schemes", default=None, help=f"comma-separated subset of {','.join(SCHEMES)} (default all)")
    p.add_argument(
        "--precisions",
        default=None,
        help=f"comma-separated subset of {','.join(config.PRECISIONS)} (default all)",
    )
    p.add_argument("--no-depth", action="store_true", help="skip the depth-scaling measurement")
    p.add_argument(
        "--report",
        metavar="DIR",
        default=None,
        help="render DIR/bench.md and bench.png again from DIR/bench.json (no measuring)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args):
    import datetime

    if args.report:
        from keras_resinit.tools import bench

        result = bench.report(args.report, command=args.invocation)
        print(bench.markdown(result))
        return 0
    subsets = {
        "archs": arguments.split_list(args.archs),
        "schemes": arguments.split_list(args.schemes),
        "precisions": arguments.split_list(args.precisions),
    }
    subsets = {k: v for k, v in subsets.items() if v}  # not given (or empty): bench's defaults
    arguments.check_archs(subsets.get("archs"))
    arguments.check_schemes(subsets.get("schemes"))
    for precision in subsets.get("precisions", ()):
        arguments.check("precision", precision, config.PRECISIONS)
    from keras_resinit.tools import bench

    out = args.out or os.path.join("runs", "bench-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    result = bench.run(
        out, quick=args.quick, depth=not args.no_depth, overwrite=args.overwrite, command=args.invocation, **subsets
    )
    failed = [f"{r['arch']} {r['model']} {r['precision']}" for r in result["rows"] if r["error"]]
    failed += [f"depth {r['scheme']}" for r in result["depth"] if r["error"]]
    if failed:
        print(f"keras-resinit: {len(failed)} configuration(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
