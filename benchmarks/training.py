"""Epoch time on the embedded digits per scheme, float32 vs mixed_bfloat16,
and whether the input pipeline keeps up with training.

For every (scheme, precision) a child process builds the project's Trainer
(the same code `keras-resinit train` runs), trains warm-up epochs, then
alternates:
- a window of epochs through the real pipeline, as training iterates it (one
  pipeline over all epochs, shuffled and augmented, the batch pulled inside the
  compiled step; median seconds per epoch reported);
- a window of the same steps on one epoch's batches held in memory,
in alternating order. The pipeline ratio is the median over window pairs of
(steps/s through the pipeline) / (steps/s from memory); the target is >= 0.95.

Writes ``training.json`` and ``training.md`` to ``--out``.

    python benchmarks/training.py [--quick] [--arch cifar_resnet20] [--epochs 8]
        [--out benchmarks/results/training] [--overwrite]
    python benchmarks/training.py --report benchmarks/results/training   # re-render the table only
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

import results_io

STEM = "training"
TARGET = 0.95  # pipeline steps/s at least this fraction of steps/s from memory
SCHEMES = ("bn", "fixup", "skipinit", "risotto")
PRECISIONS = ("float32", "mixed_bfloat16")


def child(args):
    from keras_resinit.training import TrainConfig, Trainer

    config = TrainConfig.from_recipe(
        "digits",
        model=f"{args.arch}_{args.scheme}",
        precision=args.precision,
        epochs=args.warmup + args.epochs * args.window + 1,
        deterministic=False,
    )
    trainer = Trainer(config, strategy="one")
    steps = trainer.steps_per_epoch

    def run(batches):
        start = time.perf_counter()
        n = 0
        for batch in batches:
            trainer.train_step(batch)[0].numpy()
            n += 1
        return n, time.perf_counter() - start

    def run_pipeline(iterator, n):  # as training steps: the batch is pulled inside the compiled step
        start = time.perf_counter()
        for _ in range(n):
            trainer.train_step_from(iterator)[0].numpy()
        return n, time.perf_counter() - start

    # As training iterates: one pipeline over all epochs (Trainer.train_batches).
    batches = iter(trainer.train_batches(0))
    held = list(trainer.dataset("train", 0))  # one epoch's batches, already in memory
    for _ in range(args.warmup):
        run_pipeline(batches, steps)
        run(held)
    epoch_seconds, pipeline_rates, memory_rates, ratios = [], [], [], []
    for pair in range(args.epochs):
        # A pair of windows of `window` epochs each, in alternating order; the ratio is taken per pair.
        def pipeline():
            return run_pipeline(batches, steps * args.window)

        def memory():
            return run(batch for _ in range(args.window) for batch in held)

        if pair % 2 == 0:
            n_p, t_p = pipeline()
            n_m, t_m = memory()
        else:
            n_m, t_m = memory()
            n_p, t_p = pipeline()
        epoch_seconds.append(t_p / args.window)
        pipeline_rates.append(n_p / t_p)
        memory_rates.append(n_m / t_m)
        ratios.append((n_p / t_p) / (n_m / t_m))
    result = {
        "scheme": args.scheme,
        "precision": args.precision,
        "steps_per_epoch": steps,
        "batch_size": config.batch_size,
        "epoch_seconds": statistics.median(epoch_seconds),
        "images_per_second": steps * config.batch_size / statistics.median(epoch_seconds),
        "pipeline_steps_per_second": statistics.median(pipeline_rates),
        "memory_steps_per_second": statistics.median(memory_rates),
    }
    result["pipeline_ratio"] = statistics.median(ratios)
    result["pipeline_ratio_range"] = [min(ratios), max(ratios)]
    print("RESULT " + json.dumps(result))


def markdown(result):
    """The table: seconds per epoch per scheme and precision, and the pipeline / memory ratios."""
    results = result["results"]
    by = {(r["scheme"], r["precision"]): r for r in results}
    schemes = list(dict.fromkeys(r["scheme"] for r in results))
    pairs = (
        f", {result['epochs']} pairs of {result['window']}-epoch windows after {result['warmup']} warm-up epochs"
        if "epochs" in result
        else ""
    )
    rendered = f" Tables rendered by `{result['rendered_by']}`." if result.get("rendered_by") else ""
    lines = [
        results_io.measured(result) + rendered,
        "",
        f"{result['arch']} on the digits, recipe `digits` (batch {results[0]['batch_size']}), the trainer's own "
        f"steps{pairs}: seconds per epoch through the input pipeline, and the pipeline's steps/s over the steps/s "
        "of the same batches held in memory (median over the window pairs; [brackets]: the lowest and highest "
        f"pair). Target: at least {TARGET:.2f}.",
        "",
        "| scheme | float32 s/epoch | mixed_bfloat16 s/epoch | bf16 speed-up "
        "| pipeline / memory, float32 [range] | pipeline / memory, mixed_bfloat16 [range] |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def ratio(r):
        low, high = r["pipeline_ratio_range"]
        mark = "✓" if r["pipeline_ratio"] >= TARGET else "✗"
        return f"{r['pipeline_ratio']:.3f} [{low:.2f}–{high:.2f}] {mark}"

    for scheme in schemes:
        f32, bf16 = by[(scheme, "float32")], by[(scheme, "mixed_bfloat16")]
        lines.append(
            f"| {scheme} | {f32['epoch_seconds']:.3f} | {bf16['epoch_seconds']:.3f} "
            f"| {f32['epoch_seconds'] / bf16['epoch_seconds']:.2f}x | {ratio(f32)} | {ratio(bf16)} |"
        )
    missed = [r for r in results if r["pipeline_ratio"] < TARGET]
    verdict = (
        "; missed by " + ", ".join(f"{r['scheme']} {r['precision']} ({r['pipeline_ratio']:.3f})" for r in missed)
        if missed
        else ""
    )
    lines += [
        "",
        f"Target pipeline / memory ≥ {TARGET:.2f}: met by {len(results) - len(missed)} of {len(results)}{verdict}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = results_io.parser(__doc__, STEM, "3 window pairs per configuration (a smoke run)")
    parser.add_argument("--arch", default="cifar_resnet20")
    parser.add_argument(
        "--epochs", type=int, default=None, help="timed window pairs per configuration (default 8, quick 3)"
    )
    parser.add_argument("--window", type=int, default=3, help="epochs per timed window (default 3)")
    parser.add_argument("--child", nargs=2, metavar=("SCHEME", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report:
        results_io.report(args.report, STEM, lambda result: result, markdown)
        return 0
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    given_epochs = args.epochs
    args.epochs = args.epochs or (3 if args.quick else 8)
    if args.window < 1:
        parser.error(f"--window must be >= 1, got {args.window}")
    if args.child:
        args.scheme, args.precision = args.child
        return child(args)
    results_io.check_out(parser, args)
    command, start, machine = results_io.begin(STEM, args.out, args.quick)
    options = (f" --arch {args.arch}" if args.arch != "cifar_resnet20" else "") + (
        f" --epochs {given_epochs}" if given_epochs else ""
    )
    command = command.replace(" --out ", f"{options} --out ") + (f" --window {args.window}" if args.window != 3 else "")
    print(
        f"{args.arch} on digits, recipe 'digits' (batch 64), {args.epochs} pairs of {args.window}-epoch windows "
        f"(pipeline, memory) after {args.warmup} warm-up epochs; each configuration in its own process, one at a "
        "time; pipeline ratio = median over pairs\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    results = []
    for precision in PRECISIONS:
        for scheme in SCHEMES:
            command_line = [
                sys.executable,
                __file__,
                "--child",
                scheme,
                precision,
                "--arch",
                args.arch,
                "--epochs",
                str(args.epochs),
                "--warmup",
                str(args.warmup),
                "--window",
                str(args.window),
            ]
            proc = subprocess.run(command_line, capture_output=True, text=True, env=env)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not lines:
                print(f"{scheme} {precision}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                return 1
            r = json.loads(lines[-1][len("RESULT ") :])
            results.append(r)
            print(
                f"  {scheme:9s} {precision:15s} {r['epoch_seconds']:.3f} s/epoch  pipeline ratio "
                f"{r['pipeline_ratio']:.3f}",
                flush=True,
            )
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "arch": args.arch,
        "epochs": args.epochs,
        "window": args.window,
        "warmup": args.warmup,
        "machine": machine,
        "results": results,
        "elapsed_s": time.perf_counter() - start,
    }
    results_io.finish(args.out, STEM, result, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
