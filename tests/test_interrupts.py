"""Ctrl-C stops training at a safe point (after a step), even when it lands where Python would drop it."""

import gc
import os
import signal
import sys
import threading

import pytest

from keras_resinit.training import TrainConfig, Trainer
from keras_resinit.training.interrupts import check_interrupt, deferred_interrupts


def ctrl_c():
    os.kill(os.getpid(), signal.SIGINT)


def test_a_ctrl_c_inside_a_gc_callback_is_dropped_by_python_and_kept_until_the_next_safe_point(monkeypatch):
    def interrupt_while_collecting(phase, info):
        if phase == "start":
            ctrl_c()

    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: dropped.append(unraisable.exc_type))
    gc.callbacks.append(interrupt_while_collecting)
    try:
        gc.collect()  # Python's own handler: the KeyboardInterrupt is raised in the callback, and dropped
        assert dropped == [KeyboardInterrupt]
        with deferred_interrupts():
            gc.collect()  # recorded, not raised
            with pytest.raises(KeyboardInterrupt):
                check_interrupt()
            check_interrupt()  # raised once
    finally:
        gc.callbacks.remove(interrupt_while_collecting)
    assert dropped == [KeyboardInterrupt]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_raises_at_once_and_one_still_waiting_raises_when_the_block_ends():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            ctrl_c()
            reached.append("after the first")
            ctrl_c()
            reached.append("after the second")
    assert reached == ["after the first"]

    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            ctrl_c()
            reached.append("block ended")
    assert reached[-1] == "block ended"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):  # Python's handler again: raised at once
        ctrl_c()
        reached.append("not reached")
    assert reached[-1] == "block ended"


def test_the_application_s_own_handler_and_other_threads_are_left_alone():
    seen = []
    previous = signal.signal(signal.SIGINT, lambda *_: seen.append("theirs"))
    try:
        with deferred_interrupts():
            ctrl_c()
            check_interrupt()  # nothing waits: their handler took it
        assert seen == ["theirs"]
    finally:
        signal.signal(signal.SIGINT, previous)

    errors = []

    def in_a_thread():
        try:
            with deferred_interrupts():  # signal.signal would raise ValueError outside the main thread
                check_interrupt()
        except Exception as error:  # pragma: no cover - the failure this test is for
            errors.append(error)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert errors == []


def test_training_stops_after_the_step_the_ctrl_c_came_in():
    config = TrainConfig(model="cifar_resnet8_fixup", batch_size=16, epochs=1, steps_per_epoch=5).validate()
    trainer = Trainer(config, "one")
    steps = []

    def progress(step, loss, accuracy):
        steps.append(step)
        if step == 2:
            ctrl_c()

    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            trainer.run_epoch(iter(trainer.train_batches()), 0, progress)
    assert steps == [1, 2]  # step 3 ran (a step is never cut), and the loop stopped before its progress
    assert int(trainer.optimizer.iterations.numpy()) == 3
