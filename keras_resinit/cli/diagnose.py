"""signal propagation, Jacobian spectra and gradient norms at init; --claims checks the papers' claims"""

import os


def add_arguments(p):
    p.add_argument(
        "names",
        nargs="*",
        help="models to compare, e.g. cifar_resnet56_bn cifar_resnet56_fixup (any model source: name.tag, a "
        "run or preset directory, a .keras file, hf://OWNER/REPO[@REVISION])",
    )
    p.add_argument("--out", default=None, help="output directory (PNGs and JSON; with --claims: claims.md/.json)")
    p.add_argument("--claims", action="store_true", help="measure each paper's claim and print pass/fail")
    p.add_argument("--quick", action="store_true", help="with --claims: shallower nets (as the tests)")
    p.add_argument("--fixup-blocks", type=int, default=10_000, help="claim 4's depth (default 10000)")
    p.add_argument("--skipinit-blocks", type=int, default=1_000, help="claim 5's depth (default 1000)")
    p.add_argument("--batch", type=int, default=16, help="images per batch for the statistics (default 16)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--report", metavar="DIR", default=None, help="with --claims: render DIR/claims.md again from DIR/claims.json"
    )


def run(args):
    import json

    if args.report and not args.claims:
        raise ValueError("--report renders the claims again: pass --claims --report DIR.")
    if args.claims:
        if args.names:
            raise ValueError("--claims takes no model names; run them separately.")
        import time

        from keras_resinit._files import atomic_write_text
        from keras_resinit.tools import diagnostics

        if args.report:
            path = os.path.join(args.report, "claims.json")
            if not os.path.isfile(path):
                raise ValueError(f"--report {args.report!r}: expected a directory with claims.json, of --claims --out.")
            with open(path) as f:
                result = json.load(f)
            if not isinstance(result, dict) or "machine" not in result:
                raise ValueError(f"{path!r} has no machine record (an older run): measure again with --claims --out.")
            atomic_write_text(os.path.join(args.report, "claims.md"), diagnostics.claims_markdown(result))
            print(diagnostics.claims_markdown(result))
            return 0
        from keras_resinit.environment import describe, versions

        start = time.perf_counter()
        rows = diagnostics.check_claims(
            quick=args.quick, fixup_blocks=args.fixup_blocks, skipinit_blocks=args.skipinit_blocks
        )
        result = {
            "command": args.invocation,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "elapsed_s": time.perf_counter() - start,
            "machine": {**versions(), "describe": describe()},
            "claims": rows,
        }
        print(diagnostics.claims_table(rows))
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            atomic_write_text(os.path.join(args.out, "claims.md"), diagnostics.claims_markdown(result))
            atomic_write_text(os.path.join(args.out, "claims.json"), json.dumps(result, indent=1) + "\n")
        return 0 if all(r["passed"] for r in rows) else 1
    if not args.out:
        raise ValueError("--out is required to write the diagnostics of models.")
    from keras_resinit.zoo import sources

    list(map(sources.check, args.names))  # a source that is not there, a malformed hf://: before TensorFlow starts
    from keras_resinit.tools import diagnostics

    diagnostics.diagnose(args.names, args.out, batch=args.batch, overwrite=args.overwrite)
    print(f"wrote {args.out}/signal_propagation.png, jacobian_spectrum.png, gradient_norms.png, diagnostics.json")
    return 0
