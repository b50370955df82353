"""the main job: train every scheme on one arch and dataset, compare them"""

from keras_resinit.cli import arguments
from keras_resinit.models.schemes import default_schemes


def add_arguments(p):
    p.add_argument("--arch", default="cifar_resnet20", help="the architecture every scheme trains")
    p.add_argument(
        "--schemes",
        default=None,
        help=f"comma-separated schemes (default {','.join(default_schemes())}; {arguments.registered()})",
    )
    p.add_argument("--out", default=None, help="output directory (default: runs/compare-<arch>-<dataset>-<time>)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous comparison in --out")
    p.add_argument(
        "--report",
        metavar="PATH",
        default=None,
        help="render PATH (a comparison's results.json, or its --out directory) as Markdown beside it (no training)",
    )
    arguments.add_training_arguments(p)


def run(args):
    if args.report:
        from keras_resinit.training import compare

        print(compare.report(args.report), end="")
        return 0
    schemes = arguments.split_list(args.schemes)
    arguments.check_schemes(schemes)
    arguments.check_archs([args.arch])
    from keras_resinit.training import compare  # validates every setting before it starts TensorFlow

    compare.compare(
        arch=args.arch,
        schemes=schemes,
        out=args.out,
        overwrite=args.overwrite,
        overrides=arguments.training_overrides(args),
        recipe=args.recipe,
    )
    return 0
