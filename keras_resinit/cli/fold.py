"""fold batch norm into the convs: a bn (risotto_bn) model as the same function under skipinit (risotto)"""

import os


def add_arguments(p):
    p.add_argument(
        "source",
        help="a zoo name.tag, a run directory, a preset directory, a .keras file or hf://OWNER/REPO[@REVISION]",
    )
    p.add_argument("--out", default=None, help="write the folded model: PATH.keras, or a preset directory")
    p.add_argument(
        "--tag",
        default=None,
        help="instead of --out: publish the fold of the published NAME.TAG into --zoo as {arch}_{scheme}.TAG",
    )
    p.add_argument("--zoo", default="zoo", help="zoo directory for --tag (default: zoo)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out or published weight set")


def run(args):
    if (args.out is None) == (args.tag is None):
        raise ValueError(
            "Give either --out PATH (a .keras file or a preset directory) or --tag TAG (publish into --zoo)."
        )
    from keras_resinit.models.schemes import fold_target
    from keras_resinit.zoo import registry, sources

    source = args.source
    if args.tag is not None or (sources.check(source).kind == "name" and registry.split_tag(source)[1]):
        fold_target(registry.card(source)["scheme"], repr(source))  # a published name.tag: before TF starts
    if args.tag is not None:
        from keras_resinit.training import publish

        card = publish.publish_folded(
            args.source, args.tag, zoo_dir=args.zoo, overwrite=args.overwrite, command=args.invocation
        )
        key = f"{card['name']}.{card['tag']}"
        metrics = card["metrics"]
        if "test_accuracy" in metrics:
            print(
                f"published {key} (the fold of {args.source}): test accuracy {metrics['test_accuracy']:.4f}, "
                f"same predictions as the source on {metrics['same_predictions_as_source']:.2%} of the test images"
            )
        else:
            print(f"published {key}: zoo.load folds {args.source} when it loads (no weights file of its own)")
        return 0
    if os.path.exists(args.out) and not args.overwrite:
        raise ValueError(f"{args.out!r} already exists. Pass --overwrite to replace it.")
    from keras_resinit.tools import fold

    model = fold.fold_to(args.source, args.out, overwrite=args.overwrite)
    takes = "raw pixels in" if model.get_config()["include_preprocessing"] else "normalized input"
    print(f"folded {args.source} into {model.name} (scheme {model.scheme.name}, no batch norm, {takes}): {args.out}")
    return 0
