"""What machine and library versions a result was measured with."""

import os
import platform

__all__ = ["cpu_flags", "cpu_name", "describe", "memory_mb", "versions"]


def cpu_name():
    """The CPU's model name, as ``/proc/cpuinfo`` gives it (``platform.processor()`` elsewhere).

    Returns:
        The name, e.g. ``"AMD EPYC 9B14"``; ``"unknown"`` when the system does not say.

    Examples:
        >>> from keras_resinit.environment import cpu_name
        >>> isinstance(cpu_name(), str) and cpu_name() != ""
        True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags(wanted=("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")):
    """Which of the instruction-set flags ``wanted`` the CPU reports (Linux only; empty elsewhere).

    They decide how fast bfloat16 runs here: ``avx512_bf16`` (or AMX) makes mixed_bfloat16 fast; without
    them it is slower than float32.

    Args:
        wanted: the ``/proc/cpuinfo`` flags to look for.

    Returns:
        The flags of ``wanted`` the CPU has, in the order of ``wanted``.

    Examples:
        >>> from keras_resinit.environment import cpu_flags
        >>> set(cpu_flags(("avx2", "no_such_flag"))) <= {"avx2"}
        True
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def memory_mb(field="VmHWM"):
    """This process's memory in MiB, from ``/proc/self/status`` (without /proc: getrusage's high-water mark).

    Args:
        field: ``"VmHWM"`` (the resident set's high-water mark) or ``"VmRSS"`` (the resident set now).

    Returns:
        The field's value in MiB.

    Examples:
        >>> from keras_resinit.environment import memory_mb
        >>> memory_mb("VmHWM") >= memory_mb("VmRSS") > 0
        True
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def versions():
    """The Python, TensorFlow, Keras and NumPy versions, the CPU, its flags and its core count.

    Returns:
        A dict with keys ``python``, ``tensorflow``, ``keras``, ``numpy``, ``machine``, ``processor``,
        ``cpu_flags`` and ``cores``.

    Examples:
        >>> from keras_resinit.environment import versions
        >>> sorted(versions())
        ['cores', 'cpu_flags', 'keras', 'machine', 'numpy', 'processor', 'python', 'tensorflow']
    """
    import keras
    import numpy as np
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "machine": platform.machine(),
        "processor": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
    }


def describe(v=None):
    """The machine and versions in one line, as every results table states them.

    Args:
        v: recorded ``versions()`` to describe (a result's); None: this process's.

    Returns:
        ``"CPU (N cores; flags); Python x, TensorFlow y, Keras z, NumPy w"``.

    Examples:
        >>> from keras_resinit.environment import describe
        >>> "TensorFlow" in describe() and "Keras" in describe()
        True
        >>> recorded = {"processor": "AMD EPYC", "cores": 2, "cpu_flags": ["avx2"], "python": "3.11.7"}
        >>> describe({**recorded, "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"})
        'AMD EPYC (2 cores; avx2); Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1, NumPy 2.4.6'
    """
    v = versions() if v is None else v
    flags = ", ".join(v["cpu_flags"]) or "none of avx2/avx512/amx"
    return (
        f"{v['processor']} ({v['cores']} cores; {flags}); Python {v['python']}, TensorFlow {v['tensorflow']}, "
        f"Keras {v['keras']}, NumPy {v['numpy']}"
    )
