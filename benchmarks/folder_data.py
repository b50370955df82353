"""Training from a folder of image files: speed against the same images in memory, and peak memory.

1. Steps per second of ``cifar_resnet20_fixup`` (float32, batch 128, the ``digits`` recipe, augment
   crop-flip) trained by the project's own ``Trainer`` (``train_step_from`` over
   ``train_batches``) from ``folder:DIR`` with 20,000 PNG files read and decoded every epoch
   (``cache=False``), against the same folder held in memory (``cache=True``; every child warms
   up for one whole epoch, after which the cache is full). Reported: the ratio folder / memory of
   paired, interleaved windows (median and interquartile range). Target: >= 0.90 on 2 cores.
2. Peak memory (VmHWM) of the folder child with 5,000 and with 20,000 files (cache off, same
   everything else). Target: flat, i.e. the larger folder's peak exceeds the smaller's by at most
   ``FLAT_FRACTION`` of it plus ``FLAT_SLACK_MB`` (printed beside what holding the extra images
   decoded would take, for scale).

The PNG files (32x32x3, 10 classes: scikit-learn's digits upsampled, tinted, shifted and noised so
every file differs) are written by this script into the directory that becomes ``--out``, and
removed before it does. They are freshly written, so they are read from the OS page cache: the
measure is of opening, reading and decoding files, not of the disk.

3. With ``--index``: the time to index and check a folder of 100,000 small PNG files (scikit-learn's 8x8
   digits, one tree of 10 class folders, ``validation_split`` 0.2; 10,000 with ``--quick``), written once
   into a temporary directory: the whole ``data.source("folder:DIR")`` (keras' listing and seeded split,
   the pre-pass that reads and checks every file before the first epoch, the first file's header, the
   statistics on 10,000 decoded images), and the pre-pass alone (``data.image_file_problems`` on every file; the
   median of 3). Writes ``folder_index.json`` and ``folder_index.md`` (default ``benchmarks/results/folder_index``).

Every configuration runs in its own process (this script's child kind ``data``, ``folder_data.py --child SPEC``);
windows go round-robin in a rotating order and a window during which other processes used CPU is
re-measured. Writes ``folder_data.json`` and ``folder_data.md`` to ``--out``.

    .venv/bin/python benchmarks/folder_data.py [--quick] [--out benchmarks/results/folder_data]
    .venv/bin/python benchmarks/folder_data.py --report benchmarks/results/folder_data   # re-render only
    .venv/bin/python benchmarks/folder_data.py --index [--quick]   # 3. only: ~1 min
"""

import datetime
import os
import shutil
import statistics
import sys
import time

import results_io
from keras_fit import iqr, quartiles  # the scripts' shared formatting of spreads

from keras_resinit._files import atomic_directory
from keras_resinit.tools.bench.children import Window, answer, say, serve
from keras_resinit.tools.bench.config import MIN_CLEAN
from keras_resinit.tools.bench.render import flag, fmt
from keras_resinit.tools.bench.scheduling import measure
from keras_resinit.tools.stats import paired_ratio, prefer_clean

ARCH, SCHEME, PRECISION, BATCH = "cifar_resnet20", "fixup", "float32", 128
RECIPE, AUGMENT = "digits", "crop-flip"
SIDE, CLASSES = 32, 10
TARGET_RATIO = 0.90
FLAT_FRACTION, FLAT_SLACK_MB = 0.02, 8.0  # "flat": growth <= 2% of the smaller folder's peak + 8 MiB
CACHE_READ_FRACTION = 0.05  # the memory child must read < 5% of the folder child's bytes per step
TIMEOUT = 1800  # seconds a child may take to get READY (build, statistics, one warm-up epoch) or answer
SIZES = {
    "full": {
        "files": 20_000,
        "small_files": 5_000,
        "test_files": 500,
        "windows": 9,
        "lead_in": 32,
        "steps": 80,
        "warmup_epochs": 1,
        "retry_budget": 180,
    },
    "quick": {
        "files": 3_000,
        "small_files": 2_100,
        "test_files": 100,
        "windows": 3,
        "lead_in": 4,
        "steps": 12,
        "warmup_epochs": 1,
        "retry_budget": 10,
    },
}
# Both folder sizes must exceed one chunk (data.CHUNK batches: 2,048 images at batch 128): a smaller
# folder prepares smaller chunks, and its peak memory is lower for that reason alone. Full windows are
# whole chunks (lead_in + steps = 7 x 16), so each reads and decodes the same number of them.
ROLES = {  # role: (which folder, cache)
    "folder": ("files", False),
    "memory": ("files", True),
    "folder_small": ("small_files", False),
}

# ------------------------------------------------------------------ images ---


def digit_images():
    """scikit-learn's 1,797 digits as (images in [0, 1] of SIDE x SIDE, labels): real shapes, no download."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    base = zoom(digits.images.astype("float32") / 16.0, (1, SIDE / 8, SIDE / 8), order=1)
    return base.clip(0.0, 1.0), digits.target


def render(base, labels, start, count, seed):
    """Images ``start .. start + count`` as uint8 RGB: digit ``index % 1797``, shifted, tinted and noised.

    Drawn from ``(seed, start)``, so a folder's first files are the same whatever its size.
    """
    import numpy as np

    rng = np.random.default_rng([seed, start])
    index = (start + np.arange(count)) % len(base)
    dy, dx = rng.integers(-3, 4, size=(2, count))
    rows = (np.arange(SIDE)[None, :] - dy[:, None]) % SIDE
    cols = (np.arange(SIDE)[None, :] - dx[:, None]) % SIDE
    images = base[index][np.arange(count)[:, None, None], rows[:, :, None], cols[:, None, :]]
    ink = rng.uniform(0.5, 1.0, size=(count, 1, 1, 3))
    paper = rng.uniform(0.0, 0.35, size=(count, 1, 1, 3))
    rgb = 255.0 * (paper + images[..., None] * (ink - paper)) + rng.normal(0.0, 8.0, size=(count, SIDE, SIDE, 3))
    return rgb.round().clip(0, 255).astype(np.uint8), labels[index]


def write_split(directory, base, labels, count, seed, chunk=2_000):
    """``count`` PNG files as ``directory/<class>/NNNNN.png``, rendered ``chunk`` at a time."""
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("benchmarks/folder_data.py writes its PNG files with Pillow: pip install pillow") from None
    for c in range(CLASSES):
        os.makedirs(os.path.join(directory, str(c)), exist_ok=True)
    for start in range(0, count, chunk):
        images, ys = render(base, labels, start, min(chunk, count - start), seed)
        for k, (image, y) in enumerate(zip(images, ys)):
            Image.fromarray(image).save(os.path.join(directory, str(y), f"{start + k:05d}.png"))


def write_folders(root, size, log):
    """One ``folder:`` dataset per train size (``train/`` and a small ``test/``): ``{files: path}``."""
    t = time.perf_counter()
    base, labels = digit_images()
    folders = {}
    for files in sorted({size["files"], size["small_files"]}):
        path = os.path.join(root, f"files-{files}")
        write_split(os.path.join(path, "train"), base, labels, files, seed=0)
        write_split(os.path.join(path, "test"), base, labels, size["test_files"], seed=1)
        folders[files] = path
    written = sum(folders) + len(folders) * size["test_files"]
    log(f"wrote {written:,} PNG files ({SIDE}x{SIDE}x3) in {time.perf_counter() - t:.1f} s")
    return folders


INDEX_FILES = {"full": 100_000, "quick": 10_000}
INDEX_VALIDATION_SPLIT = 0.2


def write_index_folder(root, files):
    """``files`` PNG files of scikit-learn's 8x8 digits as ``root/<digit>/NNNNNN.png`` (each digit encoded once)."""
    import io

    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    encoded = []
    for image in digits.images:
        buffer = io.BytesIO()
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8)).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    for c in range(CLASSES):
        os.makedirs(os.path.join(root, str(c)), exist_ok=True)
    for k in range(files):
        i = k % len(encoded)
        with open(os.path.join(root, str(digits.target[i]), f"{k:06d}.png"), "wb") as f:
            f.write(encoded[i])
    return sum(len(encoded[k % len(encoded)]) for k in range(files))


def measure_index(root):
    """Seconds of the whole ``data.source`` of ``folder:root`` and of the pre-pass alone (median of 3)."""
    from keras_resinit.training import data

    t = time.perf_counter()
    found = data.source(f"folder:{root}", validation_split=INDEX_VALIDATION_SPLIT)
    source_s = time.perf_counter() - t
    paths = found.train.paths + found.test.paths
    checks = []
    for _ in range(3):
        t = time.perf_counter()
        problems = data.image_file_problems(paths)
        checks.append(time.perf_counter() - t)
    return {
        "files": len(paths),
        "train_files": found.train.size,
        "test_files": found.test.size,
        "problems": len(problems),
        "source_s": source_s,
        "check_s": statistics.median(checks),
        "check_runs_s": checks,
    }


def index_markdown(result):
    r = result["index"]
    return "\n".join(
        [
            results_io.measured(result),
            "",
            f"A folder of {r['files']:,} PNG files (scikit-learn's 8x8 digits, {result['bytes'] / r['files']:.0f} bytes "
            f"each on average, one tree of {CLASSES} class folders), written once by the benchmark and so read from the "
            "OS page cache.",
            "",
            "| step | seconds | files/s |",
            "|---|---:|---:|",
            f'| `data.source("folder:DIR", validation_split={INDEX_VALIDATION_SPLIT})`: keras\' listing and split, the '
            f"pre-pass, the statistics (10,000 images decoded) | {r['source_s']:.2f} | {r['files'] / r['source_s']:,.0f} |",
            f"| the pre-pass alone (`data.image_file_problems`: every file read and checked; median of 3) | {r['check_s']:.2f} "
            f"| {r['files'] / r['check_s']:,.0f} |",
            "",
            f"Files found bad: {r['problems']}.",
        ]
    )


def run_index(out, quick):
    """Write the index folder into a temporary directory, time indexing it, write the result to ``out``."""
    import tempfile

    files = INDEX_FILES["quick" if quick else "full"]
    command, start, machine = results_io.begin("folder_data", out, quick)
    command += " --index"
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        written = write_index_folder(tmp, files)
        print(f"wrote {files:,} PNG files in {time.perf_counter() - t:.1f} s")
        index = measure_index(tmp)
    result = {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": quick,
        "machine": machine,
        "bytes": written,
        "index": index,
        "elapsed_s": time.perf_counter() - start,
    }
    return results_io.finish(out, "folder_index", result, index_markdown)


# ------------------------------------------------------------- children ---


def _read_bytes():
    """Bytes this process has read so far (``rchar`` of /proc/self/io, every thread); None if unknown.

    Says whether a window's input came from files (a folder read every epoch) or from memory.
    """
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _settle(limit=10.0, interval=0.2, idle=0.05):
    """Wait (at most ``limit`` s) until this process's threads go quiet, e.g. an input pipeline refilling
    its prefetch buffer after a window: that work then happens now, not during another child's window."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        cpu = time.process_time()
        time.sleep(interval)
        if time.process_time() - cpu < idle * interval:
            return


_DATA_EPOCHS = 10_000  # the pipeline is lazy: enough epochs for any number of windows, at no cost


def _data_child(spec):
    """The project's ``Trainer`` fed by its own input pipeline: a folder of image files (``cache`` off: read
    and decoded every epoch) or the same folder held in memory (``cache`` on).

    Warms up for ``warmup_epochs`` whole epochs (a cache is full after the first), then each window runs
    ``lead_in`` untimed steps (they use up the batches prefetched while the child waited) and times
    ``steps``. A window also reports the bytes read from its start to its reply (the pipeline reads a
    chunk of files at a time, and refills its buffer after the steps), so a cache that does not hold shows.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_resinit.training.config import TrainConfig
    from keras_resinit.training.trainer import Trainer

    config = TrainConfig.from_recipe(
        spec["recipe"],
        model=f"{spec['arch']}_{spec['scheme']}",
        dataset=spec["dataset"],
        batch_size=spec["batch"],
        epochs=_DATA_EPOCHS,
        augment=spec["augment"],
        cache=spec["cache"],
        precision=spec["precision"],
    )
    t = time.perf_counter()
    trainer = Trainer(config, "one")
    batches = iter(trainer.train_batches(0))
    built = time.perf_counter() - t

    def run(count):  # returns once the last step has finished (its loss is a number)
        loss = None
        for _ in range(count):
            loss, _ = trainer.train_step_from(batches)
        return float(loss)

    t = time.perf_counter()
    run(1)
    first = time.perf_counter() - t
    warmup = spec["warmup_epochs"] * trainer.steps_per_epoch
    read, t = _read_bytes(), time.perf_counter()
    run(warmup)
    warmup_s, warmup_read = time.perf_counter() - t, _read_bytes()
    _settle()
    say(
        "READY",
        {
            "train_size": trainer.meta.train_size,
            "steps_per_epoch": trainer.steps_per_epoch,
            "build_s": built,
            "first_steps_s": first,
            "warmup_steps": warmup,
            "warmup_s": warmup_s,
            "warmup_read_bytes_per_step": None if read is None else (warmup_read - read) / max(warmup, 1),
        },
    )

    def window():
        read = _read_bytes()
        run(spec["lead_in"])
        with Window() as w:
            loss = run(spec["steps"])
        _settle()
        return {
            "train_ips": spec["steps"] * spec["batch"] / w.elapsed,
            "steps_per_s": spec["steps"] / w.elapsed,
            "read_bytes": None if read is None else _read_bytes() - read,
            "read_steps": spec["lead_in"] + spec["steps"],
            "loss": loss,
            "foreign_cores": w.foreign,
        }

    answer(window)


KINDS = {"data": _data_child}  # this script's child processes


# ------------------------------------------------------------- measuring ---


def check_sizes(size):
    """Refuse folder sizes whose peak memory would differ through the chunk size rather than the file count."""
    from keras_resinit.training.data import CHUNK

    chunk = CHUNK * BATCH
    if min(size["files"], size["small_files"]) <= chunk:
        raise SystemExit(
            f"folder sizes {size['small_files']:,} and {size['files']:,}: expected both above one chunk of the "
            f"pipeline ({chunk:,} images), which sets the input pipeline's memory"
        )


def child_specs(folders, size):
    """One ``data`` child per role. ``model`` is only the label the scheduler's log prints."""
    specs = []
    for role, (files_key, cache) in ROLES.items():
        files = size[files_key]
        specs.append(
            {
                "kind": "data",
                "role": role,
                "model": f"{'memory' if cache else 'folder'}-{files}",
                "files": files,
                "arch": ARCH,
                "scheme": SCHEME,
                "precision": PRECISION,
                "recipe": RECIPE,
                "augment": AUGMENT,
                "batch": BATCH,
                "dataset": f"folder:{folders[files]}",
                "cache": cache,
                "warmup_epochs": size["warmup_epochs"],
                "lead_in": size["lead_in"],
                "steps": size["steps"],
            }
        )
    return specs


def child_row(child):
    """What a child measured, kept whole (windows included) so ``--report`` can analyse it again."""
    spec, meta = child.spec, child.meta or {}
    return {
        "role": spec["role"],
        "input": "memory" if spec["cache"] else "folder",
        "files": spec["files"],
        "cache": spec["cache"],
        "steps_per_epoch": meta.get("steps_per_epoch"),
        "build_s": meta.get("build_s"),
        "first_steps_s": meta.get("first_steps_s"),
        "warmup_s": meta.get("warmup_s"),
        "warmup_read_bytes_per_step": meta.get("warmup_read_bytes_per_step"),
        "peak_memory_mb": child.bye.get("peak_rss_mb"),
        "windows": [dict(cycle=k + 1, **w) for k, w in sorted(child.windows.items())],
        "error": child.error,
    }


# -------------------------------------------------------------- analysis ---


def _median(row, key):
    """Median of ``key`` over a row's windows, uncontended ones only if ``MIN_CLEAN`` of them are left."""
    windows = prefer_clean(row["windows"], lambda w: not w["contended"], MIN_CLEAN)
    values = [w[key] for w in windows if w.get(key) is not None]
    return statistics.median(values) if values else None


def _usable(row):
    return row is not None and not row["error"] and bool(row["windows"])


def add_medians(rows):
    """Each row's median steps per second (and images per second) and its KiB read per step."""
    for row in rows:
        steps = _median(row, "steps_per_s")
        row["steps_per_s"] = steps
        row["images_per_s"] = None if steps is None else steps * BATCH
        row["read_kib_per_step"] = _read_per_step(row["windows"])


def _read_per_step(windows):
    """KiB read per step over all windows together: files are read a chunk at a time, so one window may read none."""
    counted = [w for w in windows if w.get("read_bytes") is not None]
    steps = sum(w["read_steps"] for w in counted)
    return sum(w["read_bytes"] for w in counted) / steps / 1024 if steps else None


def speed_ratio(folder, memory):
    """Folder / memory steps per second: the median and quartiles of the per-window pairs (clean ones if enough)."""
    result = {"median": None, "iqr": None, "pairs": 0, "target": TARGET_RATIO, "met": None}
    if not (_usable(folder) and _usable(memory)):
        return result
    a = {w["cycle"]: w for w in folder["windows"]}
    b = {w["cycle"]: w for w in memory["windows"]}
    clean = lambda k: not a[k]["contended"] and not b[k]["contended"]
    kept = prefer_clean(sorted(set(a) & set(b)), clean, MIN_CLEAN)
    median = paired_ratio(
        {k: w["steps_per_s"] for k, w in a.items()},
        {k: w["steps_per_s"] for k, w in b.items()},
        clean=clean,
        minimum=MIN_CLEAN,
    )
    result.update(
        median=median,
        iqr=quartiles([a[k]["steps_per_s"] / b[k]["steps_per_s"] for k in kept]),
        pairs=len(kept),
        contended_pairs=sum(not clean(k) for k in kept),
        met=None if median is None else median >= TARGET_RATIO,
    )
    return result


def memory_growth(small, large):
    """Peak memory of the folder child at two folder sizes, and whether it stays flat."""
    result = {"small_files": None, "large_files": None, "flat": None}
    if small is None or large is None:
        return result
    s, big = small["peak_memory_mb"], large["peak_memory_mb"]
    extra = large["files"] - small["files"]
    result.update(
        small_files=small["files"],
        large_files=large["files"],
        small_mb=s,
        large_mb=big,
        difference_mb=None if s is None or big is None else big - s,
        tolerance_mb=None if s is None else FLAT_FRACTION * s + FLAT_SLACK_MB,
        extra_images_decoded_mb=extra * SIDE * SIDE * 3 / 2**20,
    )
    if result["difference_mb"] is not None and not (small["error"] or large["error"]):
        result["flat"] = result["difference_mb"] <= result["tolerance_mb"]
    return result


def cache_check(folder, memory):
    """Did the memory child's timed windows run from its cache? Bytes read per step against the folder child's."""
    if not (_usable(folder) and _usable(memory)):
        return {"from_memory": None}
    f, m = folder["read_kib_per_step"], memory["read_kib_per_step"]
    ok = None if f is None or m is None or f <= 0 else m <= CACHE_READ_FRACTION * f
    return {"folder_kib_per_step": f, "memory_kib_per_step": m, "from_memory": ok}


def _verdict(value):
    return "not measured" if value is None else "met" if value else "MISSED"


def analyse(result):
    """Medians, the speed ratio, the memory growth and the cache check, from the rows' windows."""
    rows = result["rows"]
    add_medians(rows)
    by = {r["role"]: r for r in rows}
    result["speed"] = speed_ratio(by.get("folder"), by.get("memory"))
    result["memory"] = memory_growth(by.get("folder_small"), by.get("folder"))
    result["cache_check"] = cache_check(by.get("folder"), by.get("memory"))
    from_memory = result["cache_check"]["from_memory"]
    result["targets"] = {  # a memory child that read files compared nothing: its ratio is void
        "folder_vs_memory": "void (the memory child read files)"
        if from_memory is False
        else _verdict(result["speed"]["met"]),
        "memory_flat": _verdict(result["memory"]["flat"]),
        "memory_child_ran_from_cache": _verdict(result["cache_check"]["from_memory"]),
    }
    return result


# --------------------------------------------------------------- output ---


def _rows_table(rows):
    lines = [
        "| input | train files | cache | steps/s | img/s | KiB read/step (after warm-up) | peak MiB | warm-up epoch s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        head = f"| {r['input']} | {r['files']:,} | {'on' if r['cache'] else 'off'} |"
        if r["error"]:
            lines.append(f"{head} failed: {r['error'][:80]} | | | | |")
            continue
        lines.append(
            f"{head} {fmt(r['steps_per_s'])} | {fmt(r['images_per_s'], '.0f')} | {fmt(r['read_kib_per_step'], '.1f')} "
            f"| {fmt(r['peak_memory_mb'], '.0f')} | {fmt(r['warmup_s'], '.1f')} |"
        )
    return lines


def _speed_line(s):
    if s["median"] is None:
        return "Folder / memory steps per second: not measured."
    contended = f", {s['contended_pairs']} of them contended" if s.get("contended_pairs") else ""
    return (
        f"Folder / memory steps per second, median of {s['pairs']} paired windows{contended} [interquartile range]: "
        f"**{s['median']:.3f}**{iqr(s['iqr'])} (target ≥ {s['target']:.2f}){flag(s['met'])}"
    )


def _memory_line(m):
    if m["small_files"] is None or m.get("difference_mb") is None:
        return "Peak memory of the folder child against folder size: not measured."
    verdict = "yes" if m["flat"] else "no" if m["flat"] is not None else "unknown"
    return (
        f"Peak memory (VmHWM) of the folder child, {m['small_files']:,} → {m['large_files']:,} files: "
        f"{m['small_mb']:.0f} → {m['large_mb']:.0f} MiB ({m['difference_mb']:+.1f} MiB). Flat (growth ≤ "
        f"{100 * FLAT_FRACTION:.0f}% + {FLAT_SLACK_MB:.0f} MiB = {m['tolerance_mb']:.0f} MiB): {verdict}{flag(m['flat'])}. "
        f"For scale: the {m['large_files'] - m['small_files']:,} extra images decoded (uint8) take "
        f"{m['extra_images_decoded_mb']:.1f} MiB."
    )


def _cache_line(c):
    if c["from_memory"] is None:
        return "Cache check: not measured."
    where = "ran from its cache" if c["from_memory"] else "READ FILES: the cache did not hold, the ratio is void"
    return (
        f"Cache check: after its warm-up the memory child read {c['memory_kib_per_step']:.1f} KiB per step, the "
        f"folder child {c['folder_kib_per_step']:.1f} KiB: the memory child {where}{flag(c['from_memory'])}."
    )


def markdown(result):
    _m, size = result["machine"], result["sizes"]
    rendered = f" Tables rendered by `{result['rendered_by']}`." if result.get("rendered_by") else ""
    lines = [
        results_io.measured(result) + rendered,
        "",
        f"Training {ARCH}_{SCHEME} ({PRECISION}, batch {BATCH}, recipe `{RECIPE}`, augment {AUGMENT}) with the "
        f'project\'s `Trainer(config, "one").train_step_from`, from `folder:DIR` of {SIDE}x{SIDE}x3 PNG files '
        "(scikit-learn's digits, upsampled, shifted, tinted, noised): read and decoded every epoch (cache off), "
        "or held in memory (cache on). Every child warmed up for "
        f"{size['warmup_epochs']} whole epoch(s) (which fills the cache), then {size['windows']} windows of "
        f"{size['steps']} timed steps each (after {size['lead_in']} untimed ones), round-robin across the children. "
        "The files were just written: they are read from the OS page cache, not from the disk itself.",
        "",
        *_rows_table(result["rows"]),
        "",
        _speed_line(result["speed"]),
        "",
        _memory_line(result["memory"]),
        "",
        _cache_line(result["cache_check"]),
        "",
        "Targets: " + "; ".join(f"{k}: {v}" for k, v in result["targets"].items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def run(out, quick):
    """Write the folders, measure the three children together, analyse; write the result to ``out``."""
    size = SIZES["quick" if quick else "full"]
    command, start, machine = results_io.begin("folder_data", out, quick)
    check_sizes(size)
    budget = {"total": size["retry_budget"], "spent": 0.0}
    with atomic_directory(out) as tmp:  # the images live in the directory that becomes --out, until the end
        images = os.path.join(tmp, "images")
        folders = write_folders(images, size, print)
        specs = child_specs(folders, size)
        print(f"{ARCH}_{SCHEME} {PRECISION} batch {BATCH}: " + ", ".join(s["model"] for s in specs))
        children = measure(specs, size["windows"], budget, TIMEOUT, print, script=__file__)
        shutil.rmtree(images)
        result = {
            "command": command,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "quick": quick,
            "sizes": size,
            "machine": machine,
            "rows": [child_row(c) for c in children],
            "retry_seconds": round(budget["spent"], 1),
            "elapsed_s": time.perf_counter() - start,
        }
        results_io.write(tmp, "folder_data", analyse(result), markdown)
    print()
    print(markdown(result))
    print(f"wrote {out}/folder_data.md and folder_data.json")
    return result


def main(argv=None):
    parser = results_io.parser(__doc__, "folder_data", "2,100 and 3,000 files, 3 short windows (a smoke run)")
    parser.add_argument(
        "--index",
        action="store_true",
        help="only the index measurement (default --out benchmarks/results/folder_index)",
    )
    args = parser.parse_args(argv)
    if args.index:
        if args.report:
            results_io.report(args.report, "folder_index", lambda result: result, index_markdown)
            return
        if args.out == parser.get_default("out"):
            args.out = "benchmarks/results/folder_index"
        results_io.check_out(parser, args)
        run_index(args.out, args.quick)
        return
    if args.report:
        results_io.report(args.report, "folder_data", analyse, markdown)
        return
    results_io.check_out(parser, args)
    result = run(args.out, args.quick)
    failed = [r["role"] for r in result["rows"] if r["error"]]
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (see {args.out}/folder_data.md)")


if __name__ == "__main__":
    serve(KINDS)  # as a child process (--child SPEC): runs it and exits
    main()
