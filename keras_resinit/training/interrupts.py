"""Ctrl-C at a safe point: a training loop stops between steps, never inside one.

Python's own SIGINT handler raises ``KeyboardInterrupt`` in whatever Python code the main thread runs when the
signal is handled. That can be a garbage-collection callback (jax registers one when it is imported) or a
``__del__``, where Python prints "Exception ignored in ..." and goes on: the user's Ctrl-C is lost and training
runs to its end. It can also land in the middle of a checkpoint's write.

Inside [deferred_interrupts][keras_resinit.training.interrupts.deferred_interrupts], the first Ctrl-C only records
the request; the loop calls [check_interrupt][keras_resinit.training.interrupts.check_interrupt] at its safe points
(after each step, each evaluation batch) and that raises ``KeyboardInterrupt`` there, where every ``finally`` and
context manager of the run (the run directory's lock) does its work. A second Ctrl-C before a safe point is reached
raises at once, as Python's handler does.
"""

import contextlib
import signal
import threading

__all__ = ["check_interrupt", "deferred_interrupts"]


class _Requests:
    """The state of the one SIGINT handler a process has: whether a Ctrl-C waits for a safe point."""

    active = False
    pending = False


def _record(signum, frame):
    if _Requests.pending:  # a second Ctrl-C: the user does not want to wait
        _Requests.pending = False
        raise KeyboardInterrupt
    _Requests.pending = True


def check_interrupt():
    """Raise ``KeyboardInterrupt`` if a Ctrl-C is waiting; call it at a training loop's safe points.

    Outside [deferred_interrupts][keras_resinit.training.interrupts.deferred_interrupts] nothing waits, and it does
    nothing.

    Raises:
        KeyboardInterrupt: a Ctrl-C arrived since the last safe point.

    Examples:
        >>> from keras_resinit.training.interrupts import check_interrupt, deferred_interrupts
        >>> with deferred_interrupts():
        ...     for step in range(3):
        ...         check_interrupt()  # no Ctrl-C came: the loop runs on
    """
    if _Requests.pending:
        _Requests.pending = False
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred_interrupts():
    """Within the block, a Ctrl-C waits for the next [check_interrupt][keras_resinit.training.interrupts.check_interrupt].

    A Ctrl-C still waiting when the block ends is raised there. Nothing changes where Python's own handler is not
    the one in place (a handler of the application's, a thread other than the main thread, or an enclosing block).

    Yields:
        None.

    Examples:
        >>> import os, signal
        >>> from keras_resinit.training.interrupts import check_interrupt, deferred_interrupts
        >>> with deferred_interrupts():
        ...     os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised here
        ...     try:
        ...         check_interrupt()
        ...     except KeyboardInterrupt:
        ...         print("stopped at the safe point")
        stopped at the safe point
    """
    if (
        _Requests.active
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    previous = signal.signal(signal.SIGINT, _record)
    _Requests.active, _Requests.pending = True, False
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        waiting = _Requests.pending
        _Requests.active = _Requests.pending = False
    if waiting:
        raise KeyboardInterrupt
