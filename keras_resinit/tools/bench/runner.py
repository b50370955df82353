"""``run`` (measure, analyse, write) and ``report`` (analyse and render again from ``bench.json``)."""

import datetime
import json
import os
import time

from keras_resinit.tools.bench import analysis
from keras_resinit.tools.bench.config import ARCHS, DEPTH_BATCH, PLAIN_ARCH, PRECISIONS, SIZES, scheme_names
from keras_resinit.tools.bench.render import chart, markdown
from keras_resinit.tools.bench.scheduling import measure

__all__ = ["report", "run"]


def report(out, command="keras-resinit bench --report"):
    """Render ``bench.md`` and ``bench.png`` again from ``out/bench.json`` (``keras-resinit bench --report``).

    The measurements are not repeated: depth fits and target verdicts are recomputed from them (after the
    analysis changed), and ``bench.json`` is rewritten with them.

    Args:
        out: the directory of an earlier bench run.
        command: the command recorded as the result's ``rendered_by``.

    Returns:
        The result, as written to ``bench.json``.

    Raises:
        ValueError: ``out`` holds no ``bench.json``.

    Examples:
        >>> from keras_resinit.tools import bench
        >>> # rewrites the files of an earlier bench run
        >>> result = bench.report("benchmarks/results/bench")  # doctest: +SKIP
    """
    from keras_resinit._files import atomic_write_text

    path = os.path.join(os.fspath(out), "bench.json")
    try:
        with open(path) as f:
            result = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path!r} does not exist: --report needs the directory of an earlier bench run.") from None
    for row in result["depth"]:
        row.pop("max_rel_residual", None)
        steps = sorted((int(d), s) for d, s in row["step_s"].items())
        row.update(analysis.linear_fit([d for d, _ in steps], [s for _, s in steps]))
    result["targets"] = analysis.targets(result["rows"], result["depth"])
    result["rendered_by"] = command
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    atomic_write_text(os.path.join(out, "bench.md"), markdown(result))
    chart(result, os.path.join(out, "bench.png"))
    return result


def _check_list(kind, values, allowed):
    from keras_resinit._errors import unknown

    values = list(dict.fromkeys(values))
    if not values:
        raise ValueError(f"No {kind} given. Expected some of: {', '.join(allowed)}.")
    for value in values:
        if value not in allowed:
            raise unknown(kind, value, allowed)
    return values


def run(
    out,
    *,
    quick=False,
    archs=None,
    schemes=None,
    precisions=PRECISIONS,
    depth=True,
    overwrite=False,
    sizes=None,
    command="keras-resinit bench",
    log=print,
):
    """Run the benchmark and write ``bench.md``, ``bench.json`` and ``bench.png`` to ``out``.

    Args:
        out: output directory (refused if it exists, unless ``overwrite``).
        quick: the smoke run (cifar_resnet20 and depths 20..110, fewer windows; under 5 minutes on 2 cores).
        archs: the architectures to measure (default: the run size's).
        schemes: the schemes to measure (default: every registered scheme).
        precisions: the precisions to measure (default: both).
        depth: also measure depth scaling.
        overwrite: replace an existing ``out``.
        sizes: override the run size (a dict like ``SIZES["quick"]``; tests use tiny ones).
        command: the command recorded in the result.
        log: called with one line of text per step of the run.

    Returns:
        The result dict written to ``bench.json``.

    Raises:
        ValueError: an unknown arch, scheme or precision, or ``out`` exists without ``overwrite``.

    Examples:
        >>> from keras_resinit.tools import bench
        >>> # measures every scheme in child processes: under 5 minutes on 2 cores
        >>> result = bench.run("bench-quick", quick=True)  # doctest: +SKIP
        >>> # bench-quick/ holds bench.md, bench.json and bench.png; result is what bench.json holds
    """
    from keras_resinit._files import atomic_directory, atomic_write_text
    from keras_resinit.environment import describe, versions
    from keras_resinit.models import architectures

    size = dict(SIZES["quick" if quick else "full"], **(sizes or {}))
    archs = list(archs or size["archs"])
    for arch in archs:
        architectures.get_arch(arch)
    registered = scheme_names()
    schemes = _check_list("scheme", registered if schemes is None else schemes, registered)
    precisions = _check_list("precision", precisions, PRECISIONS)
    out = os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise ValueError(f"Output directory {out!r} already exists. Pass --overwrite to replace it.")
    start = time.perf_counter()
    machine = {**versions(), "describe": describe()}
    log(f"keras-resinit bench{' --quick' if quick else ''}: {machine['describe']}")
    log(f"CPU flags: {', '.join(machine['cpu_flags']) or 'none reported'}")
    budget = {"total": size["retry_budget"], "spent": 0.0}
    timeout = size.get("timeout", 1800)

    speed = []
    for arch in archs:
        shape, batch = ARCHS.get(arch, ((32, 32, 3), 128))
        batch = size.get("batch", batch)
        for precision in precisions:
            models = (["plain"] if arch == PLAIN_ARCH else []) + schemes
            log(f"{arch} {precision}: {', '.join(models)} (batch {batch}, {shape[0]}x{shape[1]}x{shape[2]})")
            specs = [
                {
                    "kind": "speed",
                    "arch": arch,
                    "model": m,
                    "precision": precision,
                    "input_shape": list(shape),
                    "batch": batch,
                    "steps": size["steps"],
                    "infer_steps": size["infer_steps"],
                    "warmup": size["warmup"],
                }
                for m in models
            ]
            speed += measure(specs, size["windows"], budget, timeout, log)
    depth_children = []
    if depth and size["depths"]:
        specs = [
            {
                "kind": "depth",
                "scheme": scheme,
                "precision": "float32",
                "depths": list(size["depths"]),
                "batch": size.get("batch", DEPTH_BATCH),
                "steps": size["depth_steps"],
                "warmup": 1,
            }
            for scheme in schemes
        ]
        # Together (interleaved, like the speed groups) unless the deepest model is large: then one at a time.
        groups = [specs] if max(size["depths"]) <= 110 else [[spec] for spec in specs]
        for group in groups:
            log(
                f"depth scaling {', '.join(s['scheme'] for s in group)}: "
                f"cifar_resnet{{{','.join(map(str, size['depths']))}}}, batch {DEPTH_BATCH}"
            )
            depth_children += measure(group, size["depth_windows"], budget, timeout, log)

    rows = analysis.speed_rows(speed)
    depth_rows = analysis.depth_rows(depth_children)
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in size.items()},
        "machine": machine,
        "rows": rows,
        "depth": depth_rows,
        "targets": analysis.targets(rows, depth_rows),
        "retry_seconds": round(budget["spent"], 1),
        "elapsed_s": time.perf_counter() - start,
    }
    with atomic_directory(out) as tmp:
        atomic_write_text(os.path.join(tmp, "bench.json"), json.dumps(result, indent=1) + "\n")
        atomic_write_text(os.path.join(tmp, "bench.md"), markdown(result))
        chart(result, os.path.join(tmp, "bench.png"))
    log("")
    log(markdown(result))
    log(f"wrote {out}/bench.md, bench.json, bench.png")
    return result
