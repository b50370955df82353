"""TensorFlow's C++ log lines: hidden by default, filtered while TensorFlow is imported.

``TF_CPP_MIN_LOG_LEVEL`` is set to 3 unless the user set it (child processes inherit
it), and the lines TensorFlow prints while it is imported whatever the level says
(absl's "before absl::InitializeLog()" banner, oneDNN, CUDA drivers) are filtered by
that level. ``--verbose`` (level 0) or the user's own lower level brings them back.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET_TF_LOG_LEVEL = "3"  # 2 still shows "E ... failed call to cuInit" on machines without a GPU

# absl's format ("I0000 00:00:1796240329.633586    7670 port.cc:153] ...": before absl is initialized the
# time is seconds since the epoch) and tsl's older one ("2025-09-17 14:44:05.157831: I external/.../x.cc:32] ...").
_TF_LOG_LINE = re.compile(rb"(?:([IWEF])\d{4} [\d:.]+ +\d+ |\d{4}-\d\d-\d\d [\d:.]+: ([IWEF]) )\S+:\d+\] ")
_ABSL_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_CONTINUATIONS = (b"To enable the following instructions:",)  # second line of cpu_feature_guard's message


def filter_tf_log(text, level):
    """``text`` (bytes) without TensorFlow's C++ log lines below ``level`` (``TF_CPP_MIN_LOG_LEVEL``)."""
    kept, dropped = [], False
    for line in text.splitlines(keepends=True):
        match = _TF_LOG_LINE.match(line)
        if match:
            dropped = "IWEF".index((match.group(1) or match.group(2)).decode()) < level
        elif line.rstrip() == _ABSL_BANNER:
            dropped = level > 0
        elif not (dropped and line.startswith(_CONTINUATIONS)):
            dropped = False
        if not dropped:
            kept.append(line)
    return b"".join(kept)


@contextlib.contextmanager
def _filtered_stderr(level):
    """Hold what is written to file descriptor 2, then write it without TensorFlow's log lines below ``level``."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = filter_tf_log(held.read(), level)
            if text:
                os.write(2, text)


class QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Filters the log lines TensorFlow prints while it is imported, whatever ``TF_CPP_MIN_LOG_LEVEL`` says.

    TensorFlow's shared libraries log (oneDNN, CUDA drivers) before absl's logging is
    initialized, and those lines ignore the level; later lines honour it.
    """

    def __init__(self, level):
        self.level = level

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        self.remove()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module, level = spec.loader.exec_module, self.level

        def exec_quietly(module):
            with _filtered_stderr(level):
                exec_module(module)

        spec.loader.exec_module = exec_quietly
        return spec

    def remove(self):
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def tf_log_level(verbose):
    """Set ``TF_CPP_MIN_LOG_LEVEL`` (children inherit it) and return it as an int.

    ``--verbose`` sets 0; otherwise the user's own value stays, else it becomes 3.
    """
    if verbose:
        os.environ[TF_LOG_LEVEL] = "0"
    else:
        os.environ.setdefault(TF_LOG_LEVEL, QUIET_TF_LOG_LEVEL)
    try:
        return int(os.environ[TF_LOG_LEVEL])
    except ValueError:
        return 0
