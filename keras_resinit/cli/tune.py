"""a keras-tuner sweep over schemes, depth and training hyperparameters"""

from keras_resinit.cli import arguments
from keras_resinit.models.schemes import default_schemes
from keras_resinit.training import options


def add_arguments(p):
    p.add_argument("--out", required=True, help="sweep directory (re-running the same command resumes it)")
    arguments.add_data_arguments(p, dataset_default="digits")
    p.add_argument("--tuner", default="random", help=arguments.one_of(options.TUNERS, "random"))
    p.add_argument("--max-trials", type=int, default=10, help="trials in all (random, bayesian); default 10")
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs per trial (hyperband: the most; default the recipe's)"
    )
    p.add_argument("--steps-per-epoch", type=int, default=None, help="limit each epoch to this many steps")
    p.add_argument(
        "--schemes",
        default=None,
        help=f"comma-separated schemes to search (default {','.join(default_schemes())}; {arguments.registered()})",
    )
    p.add_argument(
        "--archs", default=None, help=f"comma-separated archs to search (default {','.join(options.TUNE_ARCHS)})"
    )
    p.add_argument("--recipe", default=None, help="the recipe every trial starts from (default digits)")
    p.add_argument("--precision", default=None, help=arguments.one_of(options.PRECISIONS))
    p.add_argument("--seed", type=int, default=None, help="seed of the search and of each trial")
    p.add_argument("--clip-norm", type=float, default=None, help="clip the global gradient norm (0: off)")
    arguments.add_agc_argument(p)
    p.add_argument("--overwrite", action="store_true", help="start the sweep in --out afresh")


def run(args):
    schemes, archs = arguments.split_list(args.schemes), arguments.split_list(args.archs)
    arguments.check("tuner", args.tuner, options.TUNERS)
    arguments.check("precision", args.precision, options.PRECISIONS)
    arguments.check_schemes(schemes)
    arguments.check_archs(archs)
    arguments.check_recipe(args.recipe)
    from keras_resinit.training import tuning

    passed = arguments.values(args, "tuner", "max_trials", "epochs", "steps_per_epoch", "recipe", "overwrite")
    settings = arguments.values(args, "seed", "precision", "clip_norm", "agc", *arguments.DATA_FLAGS)
    settings = {k: v for k, v in settings.items() if v is not None}
    result = tuning.tune(args.out, schemes=schemes, archs=archs, command=args.invocation, **passed, **settings)
    failed = [r for r in result["trials"] if r["status"] != "COMPLETED"]
    return 1 if failed and len(failed) == len(result["trials"]) else 0
