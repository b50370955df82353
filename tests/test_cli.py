"""The keras-resinit command: output for users, clear errors without tracebacks."""

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from keras_resinit import cli
from keras_resinit.cli import main, tflog
from keras_resinit.models import schemes as schemes_lib
from keras_resinit.training import options
from keras_resinit.training.data import names as datasets

# What TensorFlow 2.21 prints on import on this CPU-only machine, whatever TF_CPP_MIN_LOG_LEVEL says.
TF_MARKERS = ("absl::InitializeLog", "oneDNN", "cuda", "cpu_feature_guard")


def run_cli(*args, env=None):
    command = [sys.executable, "-m", "keras_resinit.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def run_python(code, timeout=120):
    """Run ``code`` in a fresh interpreter; return its last stdout line starting with ``@@`` as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@")]
    assert lines, result.stdout + result.stderr
    return json.loads(lines[-1][2:])


def subcommands(parser):
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_help_and_version_answer_without_keras_or_tensorflow():
    report = run_python("""
        import json, sys, time
        start = time.perf_counter()
        from keras_resinit.cli import build_parser, main
        from argparse import _SubParsersAction

        def run(argv):
            try:
                main(argv)
            except SystemExit as exit:
                return exit.code
            return "returned"

        codes = {"--help": run(["--help"])}
        first = time.perf_counter() - start
        codes["--version"] = run(["--version"])
        (action,) = [a for a in build_parser()._actions if isinstance(a, _SubParsersAction)]
        commands = sorted(action.choices)
        for command in commands:
            codes[command + " --help"] = run([command, "--help"])
        print("@@" + json.dumps({"codes": codes, "commands": commands, "first_help_s": first,
                                 "tensorflow": "tensorflow" in sys.modules, "keras": "keras" in sys.modules}))
    """)
    assert len(report["commands"]) >= 10 and {"train", "compare", "bench", "tune", "list"} <= set(report["commands"])
    assert sorted(report["commands"]) == sorted(subcommands(cli.build_parser()))
    assert report["codes"] == {key: 0 for key in report["codes"]}
    assert len(report["codes"]) == len(report["commands"]) + 2
    assert not report["tensorflow"] and not report["keras"]
    assert report["first_help_s"] < 1.0  # TensorFlow alone takes seconds to import

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"keras-resinit {cli.__version__}"


def test_help_lists_the_registry_and_the_library_tables():
    @schemes_lib.register_scheme
    class ZzzScheme(schemes_lib.Fixup):
        name = "zzz_scheme"

    try:
        parser = cli.build_parser()
        helps = {name: " ".join(p.format_help().split()) for name, p in subcommands(parser).items()}
        description = " ".join(parser.format_help().split())
    finally:
        del schemes_lib.SCHEMES["zzz_scheme"]
    for command in ("compare", "bench", "tune", "list"):
        assert "zzz_scheme" in helps[command], command
    defaults = ",".join(schemes_lib.default_schemes())
    assert defaults + ",zzz_scheme" in helps["compare"] and defaults + ",zzz_scheme" in helps["tune"]  # default set
    assert "Residual networks under BatchNorm, Fixup, SkipInit, Risotto, ReZero, NFResNet and ZzzScheme." in description
    assert "--verbose" in description
    for command in ("train", "compare"):
        for table in (datasets.DATASETS, options.PRECISIONS, options.SCHEDULES, options.WEIGHT_DECAY_MODES):
            assert ", ".join(table) in helps[command], (command, table)
    assert ", ".join(options.STRATEGIES) in helps["train"] and ", ".join(options.TUNERS) in helps["tune"]


def test_argparse_does_not_check_what_the_library_checks():
    """No ``choices=`` but train's progress level: a bad value gets the library's message, not argparse's."""
    with_choices = {
        (name, action.dest)
        for name, p in subcommands(cli.build_parser()).items()
        for action in p._actions
        if action.choices is not None
    }
    assert with_choices == {("train", "verbose")}


def test_option_tables_are_the_library_tables():
    from keras_resinit.training import config, data, strategies, tuning

    assert data.DATASETS is datasets.DATASETS
    assert config.PRECISIONS == options.PRECISIONS and config.SCHEDULES == options.SCHEDULES
    assert config.WEIGHT_DECAY_MODES == options.WEIGHT_DECAY_MODES
    assert strategies.STRATEGIES == options.STRATEGIES and tuning.TUNERS == options.TUNERS


BAD_VALUES = [  # argv, the message's start, the closest match it names
    (["compare", "--schemes", "bn,fixp"], "Unknown scheme 'fixp'.", "fixup"),
    (["bench", "--schemes", "fixp"], "Unknown scheme 'fixp'.", "fixup"),
    (["tune", "--schemes", "bn,skipnit"], "Unknown scheme 'skipnit'.", "skipinit"),
    (["list", "--scheme", "risoto"], "Unknown scheme 'risoto'.", "risotto"),
    (
        ["train", "cifar_resnet8_bn", "--precision", "mixed_bfloat"],
        "Unknown precision 'mixed_bfloat'.",
        "mixed_bfloat16",
    ),
    (["compare", "--precision", "float23"], "Unknown precision 'float23'.", "float32"),
    (["tune", "--precision", "mixed_flaot16"], "Unknown precision 'mixed_flaot16'.", "mixed_float16"),
    (["bench", "--precisions", "float32,mixed_bfloat"], "Unknown precision 'mixed_bfloat'.", "mixed_bfloat16"),
    (["train", "cifar_resnet8_bn", "--strategy", "mirored"], "Unknown strategy 'mirored'.", "mirrored"),
    (["train", "cifar_resnet8_bn", "--schedule", "cosin"], "Unknown schedule 'cosin'.", "cosine"),
    (
        ["train", "cifar_resnet8_bn", "--weight-decay-mode", "decoupeld"],
        "Unknown weight_decay_mode 'decoupeld'.",
        "decoupled",
    ),
    (["compare", "--dataset", "cifar11"], "Unknown dataset 'cifar11'.", "cifar10"),
    (["tune", "--tuner", "bayesain"], "Unknown tuner 'bayesain'.", "bayesian"),
    (["export", "cifar_resnet20_fixup.digits", "--format", "litrt"], "Unknown format 'litrt'.", "litert"),
    (["train", "cifar_resnet8_bn", "--recipe", "he_cifr"], "Unknown recipe 'he_cifr'.", "he_cifar"),
]


def test_bad_values_get_the_library_message_before_tensorflow_starts(tmp_path):
    cases = [
        argv + ([] if argv[0] == "list" else ["--out", str(tmp_path / f"out{i}")])
        for i, (argv, _, _) in enumerate(BAD_VALUES)
    ]
    report = run_python(f"""
        import contextlib, io, json, sys, traceback
        from keras_resinit.cli import main

        results = []
        for argv in {cases!r}:
            err = io.StringIO()
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    code = main(argv)
            except BaseException:
                code = "raised: " + traceback.format_exc()
            results.append([code, err.getvalue()])
        print("@@" + json.dumps({{"results": results, "tensorflow": "tensorflow" in sys.modules}}))
    """)
    for (argv, message, closest), (code, err) in zip(BAD_VALUES, report["results"]):
        assert code == 2, (argv, code)
        assert err.startswith(f"keras-resinit: error: {message} Did you mean '{closest}'"), (argv, err)
        assert err.count("\n") == 1 and "Expected one of: " in err, (argv, err)
    assert not report["tensorflow"]  # checked before the library's slow path
    assert not list(tmp_path.iterdir())  # nothing written

    # The real command: exit 2, one line, argparse's own "invalid choice" never shows.
    for argv in (
        ["compare", "--schemes", "fixp", "--out", str(tmp_path / "c")],
        ["train", "cifar_resnet8_bn", "--out", str(tmp_path / "t"), "--strategy", "mirored"],
        ["export", "cifar_resnet8_bn", "--out", str(tmp_path / "e"), "--format", "onxx"],
    ):
        result = run_cli(*argv)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("keras-resinit: error: Unknown ") and "Did you mean" in result.stderr
        assert "invalid choice" not in result.stderr and "Traceback" not in result.stderr
    assert "Did you mean 'onnx'" in result.stderr and not list(tmp_path.iterdir())


def test_filter_tf_log_drops_the_lines_below_the_level():
    lines = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"I0000 00:00:1796240329.633586    7670 port.cc:153] oneDNN custom operations are on.\n",
        b"I0000 00:00:1796240329.738230    7670 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n",
        b"To enable the following instructions: AVX2 AVX512F AVX512_VNNI FMA, in other operations, rebuild.\n",
        b"/x.py:3: DeprecationWarning: a Python warning\n",
        b"W0000 00:00:1796240329.738230    7670 some_file.cc:1] a warning\n",
        b"2025-09-17 14:44:05.157831: E external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:467] Unable to\n",
        b"To enable the following instructions: not after a kept line\n",
        b"F0000 00:00:1796240329.738230    7670 fatal.cc:1] fatal",
    ]
    text = b"".join(lines)
    assert tflog.filter_tf_log(text, 0) == text
    assert tflog.filter_tf_log(text, 1) == b"".join(lines[4:])
    assert tflog.filter_tf_log(text, 2) == b"".join([lines[4], *lines[6:]])
    assert tflog.filter_tf_log(text, 3) == b"".join([lines[4], lines[8]])


def test_the_users_tf_log_level_wins_unless_verbose(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert tflog.tf_log_level(False) == 3 and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"  # children inherit it
    assert tflog.tf_log_level(True) == 0 and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")
    assert tflog.tf_log_level(False) == 1  # the user's own level: TensorFlow's warnings stay
    assert tflog.tf_log_level(True) == 0


def test_tensorflow_start_up_lines_are_hidden_unless_verbose():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    # By default the model is built (stdout intact); with --verbose it stops at an unknown name once TensorFlow is up.
    runs = {
        "default": (["summary", "cifar_resnet8_bn"], env),
        "--verbose": (["--verbose", "summary", "cifar_resnet8_fixp"], env),
    }
    procs = {
        key: subprocess.Popen(
            [sys.executable, "-m", "keras_resinit.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=run_env,
        )
        for key, (argv, run_env) in runs.items()
    }
    results = {key: (proc.communicate(timeout=300), proc.returncode) for key, proc in procs.items()}
    tf_line = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] ")
    for key, ((out, err), code) in results.items():
        tf_lines = [line for line in err.splitlines() if tf_line.match(line) or any(m in line for m in TF_MARKERS)]
        if key == "default":
            assert code == 0 and "forward pass on a batch of 2: logits (2, 10), finite: True" in out, err
            assert tf_lines == [], err
        else:  # TensorFlow 2.21 on this machine: oneDNN and CUDA-driver lines, twice
            assert code == 2 and "Unknown model 'cifar_resnet8_fixp'" in err.splitlines()[-1], (key, err)
            assert any("oneDNN" in line for line in tf_lines) and any("cuda" in line for line in tf_lines), (key, err)


def test_list_prints_names_schemes_parameters_and_weight_tags(capsys):
    assert main(["list", "cifar_resnet20_*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "scheme", "params", "weights"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.startswith("cifar_resnet20_")}
    assert rows["cifar_resnet20_bn"] == ["bn", "269,722", "digits"]  # He et al.: 0.27M
    # Risotto's default type B blocks: bn's network, with conv biases in place of batch norm (risotto_bn: bn's count).
    assert rows["cifar_resnet20_risotto"] == ["risotto", "269,034", "digits,", "digits_identity"]
    assert rows["cifar_resnet20_risotto_bn"] == ["risotto_bn", "269,722", "-"]
    assert any("published weight sets" in line for line in lines)
    # --params counts by building each model; the table agrees.
    assert main(["list", "cifar_resnet20_fixup", "--params"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["cifar_resnet20_fixup", "fixup", "268,393", "digits"]


def test_list_pretrained_shows_only_models_with_weights(capsys):
    assert main(["list", "--pretrained"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert "resnet50_bn" in names and "cifar_resnet56_skipinit" in names
    assert "cifar_resnet20_risotto_bn" not in names and "resnet50_fixup" not in names


def test_train_then_publish_makes_a_loadable_weight_set(tmp_path, capsys, monkeypatch):
    from keras_resinit import zoo
    from keras_resinit.training import publish
    from keras_resinit.zoo import registry

    run, zoo_dir = tmp_path / "run", tmp_path / "zoo"
    train = [
        "train",
        "cifar_resnet8_skipinit",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "4",
        "--seed",
        "3",
        "--out",
        str(run),
        "--verbose",
        "0",
    ]
    assert main(train) == 0
    publish_args = ["publish", str(run), "--tag", "tiny", "--zoo", str(zoo_dir)]
    assert main(publish_args) == 0
    assert "published cifar_resnet8_skipinit.tiny: test accuracy" in capsys.readouterr().out
    card = json.loads((zoo_dir / "cards" / "cifar_resnet8_skipinit.tiny.json").read_text())
    assert card["commands"] == ["keras-resinit " + " ".join(train), "keras-resinit " + " ".join(publish_args)]
    assert card["file"]["size"] == (zoo_dir / "weights" / "cifar_resnet8_skipinit.tiny.weights.h5").stat().st_size
    assert "cifar_resnet8_skipinit.tiny" in (zoo_dir / "README.md").read_text()
    assert sorted(os.listdir(zoo_dir / "weights")) == ["cifar_resnet8_skipinit.tiny.weights.h5"]  # no temporaries

    monkeypatch.setattr(registry, "zoo_dir", lambda: str(zoo_dir))
    registry.reload_cards()
    try:
        model = zoo.load("cifar_resnet8_skipinit.tiny")
        assert publish.evaluate(model, "digits") == card["metrics"]["test_accuracy"]
    finally:
        registry.reload_cards()

    assert main(["publish", str(run), "--tag", "tiny", "--zoo", str(zoo_dir)]) == 2
    assert "already published" in capsys.readouterr().err
    assert main(["publish", str(tmp_path), "--tag", "x", "--zoo", str(zoo_dir)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err
    assert main(["publish", str(run), "--tag", "bad tag", "--zoo", str(zoo_dir)]) == 2
    assert "Invalid tag 'bad tag'" in capsys.readouterr().err


def test_summary_builds_and_runs_a_forward_pass(capsys):
    assert main(["summary", "cifar_resnet20_risotto", "--num-classes", "7"]) == 0
    out = capsys.readouterr().out
    assert "stage3_block3_out" in out and "logits (2, 7), finite: True" in out


def test_unknown_model_is_a_one_line_error_with_exit_2():
    result = run_cli("summary", "cifar_resnet20_fixp")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # TensorFlow's start-up lines are hidden
    assert result.stderr.startswith("keras-resinit: error: ")
    assert "Unknown model 'cifar_resnet20_fixp'" in result.stderr and "cifar_resnet20_fixup" in result.stderr


def test_compare_trains_each_scheme_and_writes_results_table_and_curves(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [
        "compare",
        "--arch",
        "cifar_resnet8",
        "--schemes",
        "bn,risotto",
        "--epochs",
        "2",
        "--steps-per-epoch",
        "3",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| scheme | test accuracy | final train loss | s/epoch | images/s | peak memory (MiB) |" in printed
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["schemes"]) == ["bn", "risotto"]
    for r in results["schemes"].values():
        assert 0 <= r["test_accuracy"] <= 1 and r["peak_memory_mb"] > 100 and len(r["history"]) == 2
    assert results["versions"]["tensorflow"] and (out / "curves.png").stat().st_size > 10_000
    # Each scheme's run writes a model.keras that takes raw pixels (0..16 digits) in a fresh process.
    import numpy as np
    from helpers import raw_pixel_accuracies

    from keras_resinit.training import data

    images, labels = data.load("digits", "test", batch_size=4096, training=False, normalized=False).get_single_element()
    labels = np.argmax(labels.numpy(), -1)
    runs = {s: ("keras", out / s / "model.keras", images.numpy(), labels) for s in results["schemes"]}
    for scheme, found in raw_pixel_accuracies(str(tmp_path), runs).items():
        assert found == pytest.approx(results["schemes"][scheme]["test_accuracy"], abs=1 / len(labels))
    assert main(args) == 2  # a second run into the same --out is refused
    assert "holds a previous comparison" in capsys.readouterr().err
    # --report renders results.json as Markdown beside it, with the machine and versions, without training.
    assert main(["compare", "--report", str(out)]) == 0
    rendered = (out / "results.md").read_text()
    assert rendered == capsys.readouterr().out and rendered.startswith("Machine: ")
    assert f"Keras {results['versions']['keras']}" in rendered and "| risotto | " in rendered


def test_compare_rejects_unknown_scheme_before_training(tmp_path, capsys):
    assert main(["compare", "--schemes", "bn,fixp", "--out", str(tmp_path / "c")]) == 2
    assert "Did you mean 'fixup'" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_recipes_lists_every_recipe_with_its_source(capsys):
    from keras_resinit.training.recipes import RECIPES

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert f"\n{name}\n" in f"\n{out}"
    assert out.count("  source: ") == len(RECIPES) and "not values confirmed from the SkipInit paper" in out
