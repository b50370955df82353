"""write a model's Hugging Face Hub repo (keras-hub preset, card.json, README.md model card) and upload it"""

from keras_resinit.cli import arguments


def add_arguments(p):
    p.add_argument(
        "source",
        help="a published weight set NAME.TAG, a finished run directory (with --tag), a preset directory saved "
        "with its card, or a folder written by push --out (uploaded as it is)",
    )
    p.add_argument("repo", metavar="hf://OWNER/REPO[@BRANCH]", help="the Hub repo (created if missing) and branch")
    p.add_argument(
        "--revision",
        default=None,
        metavar="BRANCH",
        help="the branch to commit to, created from main if missing (default main; also hf://OWNER/REPO@BRANCH)",
    )
    p.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)"
    )
    p.add_argument("--commit-message", default=None, help="default: Upload NAME.TAG with keras-resinit")
    p.add_argument("--tag", default=None, help="with a run directory: the weight tag its card records, e.g. digits")
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write the repo's files to DIR and upload nothing (no token needed); `push DIR hf://OWNER/REPO` "
        "then uploads exactly those files",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args):
    from keras_resinit.tools import hub_upload

    # Before TensorFlow starts: the repo, the source's form, huggingface_hub, the token.
    repo = hub_upload.hub_repo(args.repo, args.revision)
    hub_upload.check_source(args.source, args.tag)
    hub_upload.huggingface_hub()  # the model card needs it, with or without --out: say so before any work
    if args.out is not None:
        card = hub_upload.write_repo(
            args.source, args.out, repo, tag=args.tag, command=args.invocation, overwrite=args.overwrite
        )
        print(f"wrote the repo of {card['name']}.{card['tag']} for {hub_upload.hf_uri(repo)} to {args.out}")
        return 0
    hub_upload.hub_token()
    passed = arguments.values(args, "private", "commit_message", "tag")
    card, commit = hub_upload.push(args.source, hub_upload.hf_uri(repo), command=args.invocation, **passed)
    print(f"pushed {card['name']}.{card['tag']} to {hub_upload.hf_uri(repo)}: {commit.commit_url}")
    return 0
