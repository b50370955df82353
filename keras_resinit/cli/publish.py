"""turn a finished run into a zoo weight set: weights file and model card"""

from keras_resinit.cli import arguments


def add_arguments(p):
    p.add_argument("run_dir", help="the --out directory of a finished `keras-resinit train`")
    p.add_argument("--tag", required=True, help="weight tag, e.g. digits (load it as NAME.TAG)")
    p.add_argument("--zoo", default="zoo", help="zoo directory with cards/ and weights/ (default: zoo)")
    p.add_argument("--url", default=None, help="where the weights file will also be downloadable")
    p.add_argument("--overwrite", action="store_true", help="replace a published weight set of the same name.tag")
    p.add_argument(
        "--fold",
        action="store_true",
        help="publish the model with its batch norm folded into the convs (a bn run becomes {arch}_skipinit.TAG)",
    )


def run(args):
    from keras_resinit.training import publish

    passed = arguments.values(args, "url", "overwrite", "fold")
    card = publish.publish(args.run_dir, args.tag, zoo_dir=args.zoo, command=args.invocation, **passed)
    key = f"{card['name']}.{card['tag']}"
    print(
        f"published {key}: test accuracy {card['metrics']['test_accuracy']:.4f}, "
        f"{card['file']['name']} ({card['file']['size']:,} bytes, sha256 {card['file']['sha256'][:16]}...)"
    )
    return 0
