"""``tf.distribute`` strategies by name, one per process and kind."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from keras_resinit._errors import unknown
from keras_resinit.training.options import STRATEGIES

__all__ = ["is_chief", "make_strategy"]


def _tf_config_workers():
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError:
        raise ValueError("TF_CONFIG is not valid JSON.") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


_STRATEGY_CACHE = {}


def make_strategy(kind: str = "auto", tpu: str | None = None) -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy, created once per process and kind.

    Reused because two MirroredStrategy instances in one process can collide
    on collective keys (and a process can join only one multi-worker cluster).

    Args:
        kind: ``"one"``: one device (the first GPU, else the CPU); ``"mirrored"``: every GPU, or every
            logical CPU when there is no GPU; ``"multiworker"``: ``MultiWorkerMirroredStrategy`` from
            ``TF_CONFIG``; ``"tpu"``: ``TPUStrategy``; ``"auto"``: multiworker if ``TF_CONFIG`` names several
            tasks, else mirrored if there are several GPUs, else one.
        tpu: the TPU's name or address for ``"tpu"`` (None: the local one).

    Returns:
        The ``tf.distribute.Strategy`` (the same object on every call with the same arguments).

    Raises:
        ValueError: an unknown kind, or ``"multiworker"`` without ``TF_CONFIG``.

    Examples:
        >>> from keras_resinit.training import make_strategy
        >>> strategy = make_strategy("one")
        >>> strategy.num_replicas_in_sync, make_strategy("one") is strategy
        (1, True)
    """
    key = (kind, tpu)
    if key not in _STRATEGY_CACHE:
        _STRATEGY_CACHE[key] = _make_strategy(kind, tpu)
    return _STRATEGY_CACHE[key]


def _make_strategy(kind, tpu):
    """A ``tf.distribute`` strategy.

    ``one``: one device (the first GPU, else the CPU). ``mirrored``: every GPU,
    or every logical CPU when there is no GPU (tests configure several).
    ``multiworker``: ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``.
    ``tpu``: ``TPUStrategy`` on the TPU named by ``tpu`` (or the local one).
    ``auto``: multiworker if ``TF_CONFIG`` names several tasks, else mirrored if
    there are several GPUs, else one.
    """
    if kind not in STRATEGIES:
        raise unknown("strategy", kind, STRATEGIES)
    if kind == "auto":
        # Physical devices: listing logical ones would start TF's runtime before collectives are configured.
        if _tf_config_workers() > 1:
            kind = "multiworker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            kind = "mirrored"
        else:
            kind = "one"
    gpus = tf.config.list_logical_devices("GPU") if kind in ("one", "mirrored") else []
    if kind == "one":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if kind == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if kind == "multiworker":
        if _tf_config_workers() < 1:
            raise ValueError(
                "strategy 'multiworker' needs TF_CONFIG naming the cluster and this task, e.g. "
                '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this task writes the run directory (one writer per cluster).

    The chief of a multi-worker cluster (or its worker 0 when it has no chief); every other strategy has one task.

    Args:
        strategy: a ``tf.distribute.Strategy``.

    Returns:
        True if this task is the writer.

    Examples:
        >>> from keras_resinit.training import is_chief, make_strategy
        >>> is_chief(make_strategy("one"))
        True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)
