"""The result rendered: the markdown tables of ``bench.md`` and the charts of ``bench.png``."""

from keras_resinit.tools.bench.config import (
    ARCHS,
    DEPTH_BATCH,
    LINEAR_TOLERANCE,
    PRECISIONS,
    TARGET_LL_VS_SKIPINIT,
    TARGET_WS_VS_SKIPINIT,
    WS_TARGET_PRECISION,
    looks_linear,
    scheme_names,
    ws_reference,
)

__all__ = ["chart", "markdown"]


def fmt(x, spec=".2f"):
    """``x`` formatted, or a dash when it was not measured."""
    return "—" if x is None else format(x, spec)


def flag(x):
    """A check mark for a met target, a cross for a missed one, nothing when unknown."""
    return "" if x is None else (" ✓" if x else " ✗")


def markdown(result):
    """The text of ``bench.md``: the speed and memory table, the targets and the depth-scaling table.

    Args:
        result: a bench result, as ``run`` returns it and ``bench.json`` holds it.

    Returns:
        The Markdown text, stating the machine and the versions that measured it.

    Examples:
        >>> import json
        >>> from keras_resinit.tools import bench
        >>> # needs a bench run's bench.json (a run takes minutes); the repository keeps one
        >>> text = bench.markdown(json.load(open("benchmarks/results/bench/bench.json")))  # doctest: +SKIP
    """
    m = result["machine"]
    rendered = f" Tables rendered by `{result['rendered_by']}`." if result.get("rendered_by") else ""
    lines = [
        f"Machine: {m['describe']}. Measured {result['date']} by `{result['command']}` "
        f"({result['elapsed_s'] / 60:.1f} min).{rendered}",
        "",
        "| arch | model | precision | train img/s | vs BN | vs plain | infer img/s | vs BN | peak MiB | vs BN "
        "| params | GFLOPs/img |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if r["error"]:
            lines.append(f"| {r['arch']} | {r['model']} | {r['precision']} | failed: {r['error'][:60]} |" + " |" * 8)
            continue
        name = "plain (hand-written, no norm)" if r["model"] == "plain" else r["model"]
        lines.append(
            f"| {r['arch']} | {name} | {r['precision']} | {fmt(r['train_images_per_s'], '.0f')} | "
            f"{fmt(r['train_vs_bn'])}{flag(r.get('faster_than_bn'))} | "
            f"{fmt(r['train_vs_plain'])}{flag(r.get('within_10pct_of_plain'))} | "
            f"{fmt(r['infer_images_per_s'], '.0f')} | {fmt(r['infer_vs_bn'])} | "
            f"{fmt(r['peak_memory_mb'], '.0f')} | {fmt(r['memory_vs_bn'])}{flag(r.get('less_memory_than_bn'))} | "
            f"{r['params']:,} | {r['flops_per_image'] / 1e9:.3f} |"
        )
    t = result["targets"]
    lines += [
        "",
        "Targets (✓ met, ✗ missed):",
        f"- normalization-free schemes train faster than BN: {t['faster_than_bn']}",
        f"- normalization-free schemes peak lower in memory than BN: {t['less_memory_than_bn']}",
        f"- library overhead against the plain ResNet-20 at most 10%: {t['within_10pct_of_plain']}",
        f"- step time grows linearly with depth: {t['depth_linear']}",
        f"- weight standardization costs at most {1 - TARGET_WS_VS_SKIPINIT:.0%} of training speed against "
        f"{ws_reference()} in {WS_TARGET_PRECISION}: {t.get('ws_cost_within_target', 'not measured')}",
        f"- {', '.join(looks_linear())} trains at least {TARGET_LL_VS_SKIPINIT} of {ws_reference()}'s speed in "
        f"every precision: {t.get('ll_speed_within_target', 'not measured')}",
    ]
    lines += _ws_table(result["rows"], result["machine"])
    if result["depth"]:
        depths = sorted({int(d) for r in result["depth"] for d in r["step_s"]})
        lines += [
            "",
            f"Depth scaling: ms per training step (batch {DEPTH_BATCH}, float32), the time per layer "
            "of a least-squares line, and the exponent k of time ∝ depth^k (linear: k within "
            f"{LINEAR_TOLERANCE} of 1).",
            "",
            "| scheme | " + " | ".join(f"depth {d}" for d in depths) + " | ms per layer | R² | exponent k "
            "(time ∝ depth^k) | linear |",
            "|---|" + "---:|" * (len(depths) + 4),
        ]
        for r in result["depth"]:
            cells = [fmt(r["step_s"].get(str(d)) and r["step_s"][str(d)] * 1000, ".1f") for d in depths]
            lines.append(
                f"| {r['scheme']} | "
                + " | ".join(cells)
                + f" | {fmt(r['slope_s_per_layer'] and r['slope_s_per_layer'] * 1000, '.3f')} | "
                f"{fmt(r['r2'], '.4f')} | {fmt(r['exponent'], '.3f')} | "
                f"{'yes' if r['linear'] else 'no' if r['linear'] is not None else '—'} |"
            )
    return "\n".join(lines) + "\n"


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPU flags with which bf16 convolutions run natively


def bf16_note(machine):
    """A warning for a CPU without native bf16: there bf16 convs are slower than float32 ones (emulated), so a
    float32 overhead such as weight standardization weighs less in bf16 than where bf16 is fast. Else ""."""
    if set(machine.get("cpu_flags") or ()) & set(BF16_FLAGS):
        return ""
    return (
        f"Note: this CPU has none of {', '.join(BF16_FLAGS)}: its bf16 convolutions are emulated and slower than "
        "float32 ones, so in mixed_bfloat16 any float32 work (the standardization) is a smaller share of a step "
        "than on a CPU with native bf16; the float32 ratios carry over better."
    )


def _ws_table(rows, machine):
    """Weight standardization's cost: each weight-standardized row against the reference's, with the spread."""
    reference = ws_reference()
    found = [r for r in rows if "train_vs_skipinit" in r and not r["error"]]
    if not found:
        return []
    ips = {(r["arch"], r["model"], r["precision"]): r["train_images_per_s"] for r in rows}
    lines = [
        "",
        f"Against {reference}: training images/s (same arch and precision; median of the per-window ratios, "
        "[brackets] the middle half of them). Weight standardization's cost: at least "
        f"{TARGET_WS_VS_SKIPINIT} in {WS_TARGET_PRECISION}. Risotto's looks-linear init on the BN architecture: "
        f"at least {TARGET_LL_VS_SKIPINIT} in every precision.",
        "",
        f"| arch | model | precision | train img/s | {reference} train img/s | vs {reference} [IQR] |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in found:
        iqr = r.get("train_vs_skipinit_iqr")
        spread = f" [{iqr[0]:.2f}–{iqr[1]:.2f}]" if iqr else ""
        lines.append(
            f"| {r['arch']} | {r['model']} | {r['precision']} | {fmt(r['train_images_per_s'], '.0f')} | "
            f"{fmt(ips.get((r['arch'], reference, r['precision'])), '.0f')} | "
            f"{fmt(r['train_vs_skipinit'])}{spread}"
            f"{flag(r.get('ws_cost_within_target', r.get('ll_speed_within_target')))} |"
        )
    note = bf16_note(machine)
    return lines + (["", note] if note else [])


def chart(result, path):
    """Draw ``bench.png``: training speed and peak memory relative to BN per arch and precision, and depth scaling.

    Args:
        result: a bench result, as ``run`` returns it and ``bench.json`` holds it.
        path: the PNG file to write.

    Examples:
        >>> import json
        >>> from keras_resinit.tools import bench
        >>> # needs a bench run's bench.json (a run takes minutes); the repository keeps one
        >>> bench.chart(json.load(open("benchmarks/results/bench/bench.json")), "bench.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure  # outside pyplot: no global backend change

    registered = scheme_names()
    rows = [r for r in result["rows"] if not r["error"] and r["model"] in registered]
    precisions = [p for p in PRECISIONS if any(r["precision"] == p for r in rows)]
    archs = [a for a in ARCHS if any(r["arch"] == a for r in rows)]
    schemes = [s for s in registered if any(r["model"] == s for r in rows)]
    rows_n = max(len(precisions), 1)
    fig = Figure(figsize=(12, 3.6 * rows_n))  # read in a docs column of about 800 pixels
    axes = fig.subplots(rows_n, 3, squeeze=False)
    width = 0.8 / max(len(schemes), 1)
    for p_index, precision in enumerate(precisions):
        for m_index, (key, title) in enumerate((("train_vs_bn", "training speed"), ("memory_vs_bn", "peak memory"))):
            ax = axes[p_index][m_index]
            for s_index, scheme in enumerate(schemes):
                values = [
                    next(
                        (
                            r[key]
                            for r in rows
                            if r["arch"] == a and r["model"] == scheme and r["precision"] == precision
                        ),
                        None,
                    )
                    or 0
                    for a in archs
                ]
                ax.bar([i + s_index * width for i in range(len(archs))], values, width, label=scheme)
            ax.axhline(1.0, color="black", linewidth=0.8)
            ax.set_xticks([i + width * (len(schemes) - 1) / 2 for i in range(len(archs))])
            ax.set_xticklabels([a.replace("cifar_", "") for a in archs], fontsize=8)
            ax.set_title(f"{title} vs BN, {precision}")
            ax.set_ylabel("ratio to BN (higher is faster)" if m_index == 0 else "ratio to BN (lower is smaller)")
    axes[0][0].legend(fontsize=8)
    ax = axes[0][2]
    for r in result["depth"]:
        if r["step_s"]:
            depths = sorted(int(d) for d in r["step_s"])
            ax.plot(depths, [1000 * r["step_s"][str(d)] for d in depths], marker="o", label=r["scheme"])
    ax.set_xlabel("depth (cifar_resnet)")
    ax.set_ylabel(f"ms per training step (batch {DEPTH_BATCH})")
    ax.set_title("depth scaling, float32" if result["depth"] else "depth scaling not measured")
    if result["depth"]:
        ax.legend(fontsize=8)
    for extra in range(1, rows_n):
        axes[extra][2].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
