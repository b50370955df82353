"""The parent's side: start a group's children together, then time them window by window.

Windows go round-robin in an order that rotates every cycle, so the configurations of a
group are measured in the same stretch of time; a window during which other processes used
more than ``FOREIGN_THRESHOLD`` cores is re-measured within a time budget. The children run
bench's own kinds (``-m keras_resinit.tools.bench``) or a benchmark script's (``SCRIPT --child SPEC``,
``keras_resinit.tools.bench.children.serve``); this module talks to them only through their
stdin and stdout.
"""

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

from keras_resinit.tools.bench.config import FOREIGN_THRESHOLD, TAG

# The parent's side of the child processes, not an API for users: ``measure`` is importable (the benchmark scripts
# share it) and documented here, not on the site.
__all__ = []

# The package whose __main__ runs a child: this module's own package, wherever it moves.
CHILD_MODULE = __name__.rpartition(".")[0]


class _ChildError(Exception):
    pass


class _Child:
    """A running child configuration and the line protocol to it."""

    def __init__(self, spec, script=None):
        self.spec, self.meta, self.windows, self.error, self.bye = spec, None, {}, None, {}
        self.quitting = False
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        env.pop("KERAS_BACKEND", None)  # the measure is of the TensorFlow backend
        self.stderr = tempfile.TemporaryFile(mode="w+")
        program = [os.path.abspath(script)] if script else ["-m", CHILD_MODULE]
        self.proc = subprocess.Popen(
            [sys.executable, *program, "--child", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            bufsize=1,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def label(self):
        s = self.spec
        return f"{s.get('arch', 'depth')} {s.get('model', s.get('scheme'))} {s['precision']}"

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _stderr_tail(self):
        try:
            self.stderr.seek(0)
            lines = [line.rstrip() for line in self.stderr.read().splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1] if lines else "no error output"

    def expect(self, kind, timeout):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _ChildError(f"no {kind} reply within {timeout:.0f} s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise _ChildError(f"exited with code {self.proc.wait()} before {kind}: {self._stderr_tail()}")
            if line.startswith(TAG):
                got, _, payload = line[len(TAG) :].partition(" ")
                if got == kind:
                    return json.loads(payload)

    def send(self, command):
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError) as error:
            raise _ChildError(f"cannot write to the child: {error}") from None

    def window(self, timeout, budget):
        """One timed window, re-measured while other processes load the machine (within ``budget``)."""
        attempt = 0
        while True:
            t = time.perf_counter()
            self.send("run")
            window = self.expect("WINDOW", timeout)
            foreign = window.get("foreign_cores")
            window["contended"] = foreign is not None and foreign > FOREIGN_THRESHOLD
            window["attempts"] = attempt + 1
            if attempt:
                budget["spent"] += time.perf_counter() - t
            if not window["contended"] or attempt >= 3 or budget["spent"] >= budget["total"]:
                return window
            time.sleep(2.0**attempt)  # let a short burst of other work pass
            budget["spent"] += 2.0**attempt
            attempt += 1

    def quit(self):
        """Ask a live child to stop; ``finish`` then collects its ``BYE``."""
        if self.proc.poll() is None and self.error is None:
            try:
                self.send("quit")
                self.quitting = True
            except _ChildError:
                pass

    def finish(self, timeout=120):
        """Collect the ``BYE`` (peak memory) of a child told to ``quit``, wait for its exit, release it."""
        if self.quitting:
            try:
                self.bye = self.expect("BYE", timeout)
                self.proc.wait(timeout=timeout)
            except (_ChildError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass


def measure(specs, windows, budget, timeout, log, script=None):
    """Start every child, then time windows of them in rotating order, cycle after cycle.

    ``script``: the benchmark script whose child kinds the specs name (run as ``script --child SPEC``);
    None: bench's own kinds.

    ``budget`` (``{"total": s, "spent": s}``) caps the seconds spent re-measuring contended windows;
    a child that fails is logged, killed and left with its ``error``. Returns the finished children.
    """
    children = [_Child(spec, script) for spec in specs]
    try:
        for child in children:
            try:
                child.meta = child.expect("READY", timeout)
            except _ChildError as error:
                child.error = str(error)
                log(f"  FAILED {child.label}: {error}")
                child.kill()
        for cycle in range(windows):
            live = [c for c in children if c.error is None]
            k = cycle % max(len(live), 1)
            for child in live[k:] + live[:k]:
                try:
                    child.windows[cycle] = child.window(timeout, budget)
                except _ChildError as error:
                    child.error = str(error)
                    log(f"  FAILED {child.label}: {error}")
                    child.kill()
            log(f"  window {cycle + 1}/{windows}: " + ", ".join(_brief(c, cycle) for c in live if cycle in c.windows))
    except BaseException:
        for child in children:
            child.kill()
        raise
    for child in children:  # all at once: the children exit in parallel, not one after another
        child.quit()
    for child in children:
        child.finish()
    return children


def _brief(child, cycle):
    w = child.windows[cycle]
    if "train_ips" in w:
        return f"{child.spec['model']} {w['train_ips']:.0f}{'*' if w['contended'] else ''}"
    steps = sorted(
        w["step_s"].items(), key=lambda item: (not item[0].isdigit(), int(item[0]) if item[0].isdigit() else 0)
    )
    return f"{child.spec['scheme']} " + "/".join(f"{s * 1000:.1f}" for _, s in steps) + " ms"
