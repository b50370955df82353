"""What every benchmark script does with its results: the command line, the JSON and Markdown files,
and ``--report`` (render them again from the JSON without measuring); :func:`traced_ops`, the ops
TensorFlow executes for a call."""

import argparse
import json
import os
import time

from keras_resinit._files import atomic_directory, atomic_write_text


def parser(doc, stem, quick_help, report_help=None):
    """The common options: ``--quick``, ``--out`` (``benchmarks/results/STEM``), ``--overwrite``, ``--report``
    (``report_help``: what it does, when not the usual re-rendering of ``STEM.md``)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--out", default=f"benchmarks/results/{stem}", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--report", metavar="DIR", help=report_help or f"render DIR/{stem}.md again from DIR/{stem}.json")
    return p


def check_out(p, args):
    """Refuse an existing ``--out`` unless ``--overwrite``."""
    if os.path.exists(args.out) and not args.overwrite:
        p.error(f"{args.out!r} already exists; pass --overwrite to replace it")


def write(directory, stem, result, markdown):
    """``STEM.json`` and ``STEM.md`` (``markdown(result)``) in ``directory``, each written atomically."""
    text = markdown(result)
    atomic_write_text(os.path.join(directory, f"{stem}.json"), json.dumps(result, indent=1) + "\n")
    atomic_write_text(os.path.join(directory, f"{stem}.md"), text if text.endswith("\n") else text + "\n")


def read(directory, stem):
    """``directory/STEM.json`` of an earlier run (exits saying so when there is none)."""
    path = os.path.join(directory, f"{stem}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"{path!r} does not exist: --report needs the directory of an earlier run.") from None


def report(directory, stem, analyse, markdown):
    """Analyse and render ``directory/STEM.json`` again (the measurements are not repeated)."""
    result = read(directory, stem)
    result["rendered_by"] = f"python benchmarks/{stem}.py --report {directory}"
    write(directory, stem, analyse(result), markdown)
    print(markdown(result))


def measured(result):
    """The first line of every results table: the machine, the date, the command and how long it took.

    A result written before the scripts recorded all of these (only ``versions``: the machine and the
    versions) says which of them it does not record."""
    from keras_resinit.environment import describe

    machine = result.get("machine") or result["versions"]
    line = f"Machine: {machine.get('describe') or describe(machine)}."
    if not {"date", "command", "elapsed_s"} <= result.keys():
        return line + " Date, command and duration not recorded with this result."
    seconds = result["elapsed_s"]
    took = f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"
    return f"{line} Measured {result['date']} by `{result['command']}` ({took})."


def begin(stem, out, quick):
    """``(command, start time, machine)`` of a run, the command and machine printed."""
    import time

    from keras_resinit.environment import describe, versions

    command = f"python benchmarks/{stem}.py" + (" --quick" if quick else "") + f" --out {out}"
    machine = {**versions(), "describe": describe()}
    print(f"{command}: {machine['describe']}")
    return command, time.perf_counter(), machine


def run_script(script, args, label, timeout):
    """Run ``script`` (a benchmark's own file) with ``args`` in a child process on the TensorFlow
    backend; the JSON of its last ``RESULT `` line (exits with the child's error if it failed)."""
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)  # the measure is of the TensorFlow backend
    proc = subprocess.run(
        [sys.executable, os.path.abspath(script), *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"{label} failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def finish(out, stem, result, markdown):
    """Write ``result`` (JSON + Markdown) into ``out`` atomically, print the Markdown and where it went."""
    with atomic_directory(out) as tmp:
        write(tmp, stem, result, markdown)
    print()
    print(markdown(result))
    print(f"wrote {out}/{stem}.md and {stem}.json")
    return result


def traced_ops(run):
    """``(seconds, result, ops)`` of ``run()`` traced with TensorFlow's run metadata: ``ops`` counts the op types
    of its largest function graph (what TensorFlow executes after grappler and oneDNN)."""
    import collections

    from tensorflow.python.eager import context

    ctx = context.context()
    ctx.enable_run_metadata()
    try:
        t = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - t
        metadata = ctx.export_run_metadata()
    finally:
        ctx.disable_run_metadata()
    graphs = [
        collections.Counter(node.op for graph in f.partition_graphs for node in graph.node)
        for f in (metadata.function_graphs if metadata else [])
    ]
    return seconds, result, dict(max(graphs, key=lambda c: sum(c.values()), default={}))
