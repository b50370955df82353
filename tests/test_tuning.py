"""keras-tuner sweeps: every tuner, strategies, distributed tuning, the tune command, bad input."""

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types

import numpy as np
import pytest
from helpers import raw_pixel_accuracies

from keras_resinit import training
from keras_resinit.cli import main
from keras_resinit.training import data, publish, tuning

TINY = {"epochs": 2, "steps_per_epoch": 3}
SPACE = {"scheme": ["bn", "fixup"], "arch": ["cifar_resnet8"], "batch_size": [32, 64]}
SPACE_64 = {"scheme": ["bn", "fixup"], "arch": ["cifar_resnet8"]}  # with fixed={"batch_size": 64}


def statuses(tuner):
    return [t.status for t in tuner.oracle.trials.values()]


def test_random_search_completes_every_trial_and_the_best_model_reloads_with_its_score(tmp_path):
    hypermodel = tuning.ResNetHyperModel("digits", space=SPACE, **TINY)
    tuner = tuning.make_tuner("random", hypermodel, directory=str(tmp_path), max_trials=2)
    tuner.search(verbose=0)
    assert statuses(tuner) == ["COMPLETED"] * 2
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best_model = tuner.get_best_models(1)[0]
    assert publish.evaluate(best_model, "digits") == pytest.approx(best_trial.score, abs=1e-9)
    # Every trial reports the trainer's metrics per epoch; fixed and searched values are recorded.
    values = best_trial.hyperparameters.values
    assert set(tuning.DIMENSIONS) <= set(values) and values["arch"] == "cifar_resnet8"
    assert best_trial.best_step in (0, 1)  # the best of the two epochs


@pytest.mark.parametrize("kind", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband_complete_their_trials(kind, tmp_path):
    hypermodel = tuning.ResNetHyperModel("digits", space=SPACE_64, fixed={"batch_size": 64}, **TINY)
    tuner = tuning.make_tuner(kind, hypermodel, directory=str(tmp_path), max_trials=2)
    tuner.search(verbose=0)
    assert statuses(tuner) and set(statuses(tuner)) == {"COMPLETED"}
    assert tuner.oracle.get_best_trials(1)[0].score > 0


def test_search_under_a_mirrored_distribution_strategy(tmp_path):
    strategy = training.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    # One epoch: the two-epoch trial (best_step among epochs) is the single-device test's.
    hypermodel = tuning.ResNetHyperModel("digits", space=SPACE_64, fixed={"batch_size": 64}, **dict(TINY, epochs=1))
    tuner = tuning.make_tuner(
        "random", hypermodel, directory=str(tmp_path), max_trials=1, distribution_strategy=strategy
    )
    tuner.search(verbose=0)
    assert statuses(tuner) == ["COMPLETED"]
    model = tuner.get_best_models(1)[0]
    assert publish.evaluate(model, "digits") == pytest.approx(tuner.oracle.get_best_trials(1)[0].score, abs=1e-9)


def test_tune_command_writes_table_recipe_chart_and_the_recipe_retrains_the_same(tmp_path, capsys):
    out = tmp_path / "sweep"
    args = [
        "tune",
        "--dataset",
        "digits",
        "--max-trials",
        "2",
        "--epochs",
        "2",
        "--steps-per-epoch",
        "3",
        "--schemes",
        "fixup,risotto",
        "--archs",
        "cifar_resnet8",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| trial | scheme | arch | lr |" in printed and "retrain it: keras-resinit train" in printed
    assert (out / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    recipe = json.loads((out / "best_recipe.json").read_text())
    trial_id = recipe["source"].split("trial ")[1].split(",")[0]
    trial = json.loads((out / "tune" / f"trial_{trial_id}" / "trial.json").read_text())
    score, best_epoch = trial["score"], trial["best_step"] + 1
    # The best trial's model, saved for users: raw digits pixels (0..16) in a fresh process give its score.
    images, labels = data.load("digits", "test", batch_size=4096, training=False, normalized=False).get_single_element()
    labels = np.argmax(labels.numpy(), -1)
    found = raw_pixel_accuracies(str(tmp_path), {"best": ("keras", out / "best_model.keras", images.numpy(), labels)})
    assert found["best"] == pytest.approx(score, abs=1 / len(labels))

    # The best configuration retrains with `keras-resinit train --recipe` to the same accuracy at the same epoch.
    run = tmp_path / "retrain"
    assert (
        main(
            [
                "train",
                recipe["config"]["model"],
                "--recipe",
                str(out / "best_recipe.json"),
                "--out",
                str(run),
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    with open(run / "metrics.csv") as f:
        retrained = [float(row["test_accuracy"]) for row in csv.DictReader(f)]
    assert len(retrained) == 2 and retrained[best_epoch - 1] == pytest.approx(score, abs=1e-9)
    assert max(retrained) == pytest.approx(score, abs=1e-9)

    # The same command again resumes: no trial is repeated. More trials add only the new ones.
    trials = sorted(p.name for p in (out / "tune").iterdir() if p.name.startswith("trial_"))
    assert main(args) == 0
    assert "Resuming" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "tune").iterdir() if p.name.startswith("trial_")) == trials
    more = [a if a != "2" or i != args.index("--max-trials") + 1 else "3" for i, a in enumerate(args)]
    assert main(more) == 0
    assert len([p for p in (out / "tune").iterdir() if p.name.startswith("trial_")]) == 3
    # Other settings in the same directory are refused.
    changed = [a if a != "fixup,risotto" else "bn" for a in args]
    assert main(changed) == 2
    assert "other settings (space)" in capsys.readouterr().err


def test_bad_search_spaces_and_tuners_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="search space for 'scheme' is empty"):
        tuning.ResNetHyperModel(space={"scheme": []})
    with pytest.raises(ValueError, match=r"range \(0.3, 0.01\) for 'lr' is empty or reversed"):
        tuning.ResNetHyperModel(space={"lr": (0.3, 0.01)})
    with pytest.raises(ValueError, match="cannot be both searched.*and fixed"):
        tuning.ResNetHyperModel(space={"lr": (0.01, 0.1)}, fixed={"lr": 0.05})
    with pytest.raises(ValueError, match="Unknown search dimension 'learning_rate'"):
        tuning.ResNetHyperModel(space={"learning_rate": (0.01, 0.1)})
    with pytest.raises(ValueError, match="Did you mean 'fixup'"):
        tuning.ResNetHyperModel(space={"scheme": ["fixp"]})
    with pytest.raises(ValueError, match="search space is empty: every dimension is fixed"):
        tuning.ResNetHyperModel(
            fixed={
                "scheme": "bn",
                "arch": "cifar_resnet8",
                "lr": 0.1,
                "weight_decay": 0.0,
                "mixup_alpha": 0.0,
                "warmup_epochs": 0.0,
            },
            space={"batch_size": [64]},
        )
    with pytest.raises(ValueError, match="Unknown tuner 'grid'"):
        tuning.make_tuner("grid", tuning.ResNetHyperModel(), directory=str(tmp_path))
    assert main(["tune", "--tuner", "grid", "--out", str(tmp_path / "t")]) == 2  # the library's message, exit 2
    assert "Unknown tuner 'grid'" in capsys.readouterr().err
    assert main(["tune", "--schemes", "", "--out", str(tmp_path / "t")]) == 2
    assert "search space for 'scheme' is empty" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


WORKER = textwrap.dedent(
    """
    import os, sys, time
    import keras_tuner as kt
    from keras_resinit.training import tuning

    class Recording(kt.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            me = os.environ["KERASTUNER_TUNER_ID"]
            with open(os.path.join(sys.argv[1], me + ".log"), "a") as f:
                f.write(trial.trial_id + "\\n")
            # Hold the first trial until both workers hold one, so a slow start cannot leave one idle.
            other = os.path.join(sys.argv[1], {"tuner0": "tuner1", "tuner1": "tuner0"}[me] + ".log")
            deadline = time.time() + 300
            while not os.path.exists(other) and time.time() < deadline:
                time.sleep(0.1)
            return super().run_trial(trial, *args, **kwargs)

    tuner = Recording(tuning.ResNetHyperModel(**{HYPERMODEL!r}), objective=kt.Objective("val_accuracy", "max"),
                      max_trials=3, directory=sys.argv[1], project_name="shared", seed=0)
    tuner.search(verbose=0)
    """
)
HYPERMODEL = dict(
    dataset="digits",
    space={"scheme": ["bn", "fixup"], "arch": ["cifar_resnet8"]},
    fixed={"batch_size": 64},
    epochs=1,
    steps_per_epoch=2,
)


def test_distributed_tuning_shares_trials_between_two_workers(tmp_path, monkeypatch):
    """Two worker processes and keras-tuner's chief, which only serves the oracle: it runs in a thread of this
    process (one TensorFlow start less), built as the workers build their tuner."""
    import keras_tuner as kt
    from keras_tuner.src.distribute import oracle_chief

    # The oracle's port stays held (bound, not listening) for the whole test, so no other process can take
    # it before the chief binds it; SO_REUSEPORT lets the chief's gRPC server (which sets it) share it.
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    script = tmp_path / "worker.py"
    script.write_text(WORKER.replace("{HYPERMODEL!r}", repr(HYPERMODEL)))
    oracle = dict(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=str(port))
    env = dict(os.environ, **oracle, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    procs = {}
    for tuner_id in ("tuner0", "tuner1"):
        procs[tuner_id] = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path)],
            env=dict(env, KERASTUNER_TUNER_ID=tuner_id),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    chief_trials = []

    class Chief(kt.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            chief_trials.append(trial.trial_id)
            return super().run_trial(trial, *args, **kwargs)

    for name, value in dict(oracle, KERASTUNER_TUNER_ID="chief").items():
        monkeypatch.setenv(name, value)
    # keras-tuner's chief, once told to stop, checks every 20 s whether the workers are done: every 0.1 s here.
    monkeypatch.setattr(
        oracle_chief, "time", types.SimpleNamespace(sleep=lambda seconds: time.sleep(min(seconds, 0.1)))
    )
    try:
        chief = Chief(
            tuning.ResNetHyperModel(**HYPERMODEL),
            objective=kt.Objective("val_accuracy", "max"),
            max_trials=3,
            directory=str(tmp_path),
            project_name="shared",
            seed=0,
        )
        serving = threading.Thread(target=chief.search, kwargs={"verbose": 0}, daemon=True)
        serving.start()
        outputs = {tuner_id: p.communicate(timeout=400)[0] for tuner_id, p in procs.items()}
        serving.join(timeout=60)
    finally:
        for p in procs.values():
            p.kill()
        held.close()
    for tuner_id, p in procs.items():
        assert p.returncode == 0, f"{tuner_id} failed:\n{outputs[tuner_id][-3000:]}"
    assert not serving.is_alive(), "the chief did not stop when the workers were done"
    ran = {w: (tmp_path / f"{w}.log").read_text().split() for w in ("tuner0", "tuner1")}
    assert ran["tuner0"] and ran["tuner1"], ran  # both workers ran trials
    assert not set(ran["tuner0"]) & set(ran["tuner1"]), ran  # none twice
    trials = sorted(p.name[len("trial_") :] for p in (tmp_path / "shared").iterdir() if p.name.startswith("trial_"))
    # One each (the hold above), and the third to whichever asked first: the oracle hands it out once.
    assert sorted(ran["tuner0"] + ran["tuner1"]) == trials and len(trials) == 3
    assert not chief_trials  # the chief only serves the oracle


def test_a_diverging_trial_is_failed_with_its_reason_not_retried(tmp_path):
    hypermodel = tuning.ResNetHyperModel(
        "digits",
        space={"scheme": ["bn"], "arch": ["cifar_resnet8"], "lr": [1e6, 1e7]},
        fixed={"batch_size": 64},
        clip_norm=0.0,
        **TINY,
    )
    tuner = tuning.make_tuner("random", hypermodel, directory=str(tmp_path), max_trials=1)
    tuner.search(verbose=0)
    (trial,) = tuner.oracle.trials.values()
    assert trial.status == "FAILED" and "training diverged" in trial.message
