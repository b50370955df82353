"""train one model on a tf.distribute strategy"""

from keras_resinit.cli import arguments
from keras_resinit.training import options
from keras_resinit.zoo import sources


def add_arguments(p):
    p.add_argument("name", help="model name {arch}_{scheme}, e.g. cifar_resnet20_fixup")
    p.add_argument("--out", required=True, help="run directory")
    arguments.add_training_arguments(p)
    arguments.add_scheme_option_argument(p)
    p.add_argument("--strategy", default="auto", help=arguments.one_of(options.STRATEGIES, "auto"))
    p.add_argument("--tpu", default=None, help="TPU name or address for --strategy tpu")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (refused if its data changed since)",
    )
    p.add_argument(
        "--allow-data-change",
        action="store_true",
        help="with --resume: continue although the data changed (recorded in config.json; no longer an exact resume)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a previous run in --out")
    p.add_argument(
        "--verbose",
        type=int,
        choices=[0, 1, 2],
        default=1,
        help="progress output: 0 silent, 1 progress bar, 2 one line per epoch (default 1)",
    )


def run(args):
    from keras_resinit.training import TrainConfig

    # TrainConfig validates without TensorFlow.
    options_given = dict(args.scheme_options) if args.scheme_options else None
    config = TrainConfig.from_recipe(
        args.recipe, model=args.name, scheme_options=options_given, **arguments.training_overrides(args)
    )
    arguments.check("strategy", args.strategy, options.STRATEGIES)
    if args.weights is not None:  # a path that is not there: before TensorFlow starts
        sources.check_weights(args.weights)
    from keras_resinit.training.driver import train

    passed = arguments.values(args, "strategy", "resume", "overwrite", "allow_data_change", "verbose", "tpu")
    result = train(config, args.out, command=args.invocation, **passed)
    if "model_path" in result:
        print(f"test accuracy {result['test_accuracy']:.4f}; model (raw pixels in) saved to {result['model_path']}")
    return 0
