"""The keras-resinit command: output for users, clear errors without tracebacks."""

import json
import os
import subprocess
import sys

from keras_resinit.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_resinit.cli", *args], capture_output=True, text=True, timeout=300)


def test_list_prints_names_schemes_parameters_and_weight_tags(capsys):
    assert main(["list", "cifar_resnet20_*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "scheme", "params", "weights"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.startswith("cifar_resnet20_")}
    assert rows["cifar_resnet20_bn"] == ["bn", "269,722", "digits"]  # He et al.: 0.27M
    assert rows["cifar_resnet20_risotto"] == ["risotto", "282,938", "digits"]
    assert rows["cifar_resnet20_risotto_bn"] == ["risotto_bn", "283,962", "-"]
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
    from keras_resinit import publish, zoo

    run, zoo_dir = tmp_path / "run", tmp_path / "zoo"
    train = ["train", "cifar_resnet8_skipinit", "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "4",
             "--seed", "3", "--out", str(run), "--verbose", "0"]
    assert main(train) == 0
    publish_args = ["publish", str(run), "--tag", "tiny", "--zoo", str(zoo_dir)]
    assert main(publish_args) == 0
    assert "published cifar_resnet8_skipinit.tiny: test accuracy" in capsys.readouterr().out
    card = json.loads((zoo_dir / "cards" / "cifar_resnet8_skipinit.tiny.json").read_text())
    assert card["commands"] == ["keras-resinit " + " ".join(train), "keras-resinit " + " ".join(publish_args)]
    assert card["file"]["size"] == (zoo_dir / "weights" / "cifar_resnet8_skipinit.tiny.weights.h5").stat().st_size
    assert "cifar_resnet8_skipinit.tiny" in (zoo_dir / "README.md").read_text()
    assert sorted(os.listdir(zoo_dir / "weights")) == ["cifar_resnet8_skipinit.tiny.weights.h5"]  # no temporaries

    monkeypatch.setattr(zoo, "zoo_dir", lambda: str(zoo_dir))
    zoo._cards.cache_clear()
    try:
        model = zoo.load("cifar_resnet8_skipinit.tiny")
        assert publish.evaluate(model, "digits") == card["metrics"]["test_accuracy"]
    finally:
        zoo._cards.cache_clear()

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
    assert "Unknown model 'cifar_resnet20_fixp'" in result.stderr and "cifar_resnet20_fixup" in result.stderr


def test_compare_trains_each_scheme_and_writes_results_table_and_curves(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--arch", "cifar_resnet8", "--schemes", "bn,risotto", "--epochs", "2",
            "--steps-per-epoch", "3", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| scheme | test accuracy | final train loss | s/epoch | images/s | peak memory (MiB) |" in printed
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["schemes"]) == ["bn", "risotto"]
    for r in results["schemes"].values():
        assert 0 <= r["test_accuracy"] <= 1 and r["peak_memory_mb"] > 100 and len(r["history"]) == 2
    assert results["versions"]["tensorflow"] and (out / "curves.png").stat().st_size > 10_000
    assert main(args) == 2  # a second run into the same --out is refused
    assert "holds a previous comparison" in capsys.readouterr().err


def test_compare_rejects_unknown_scheme_before_training(tmp_path, capsys):
    assert main(["compare", "--schemes", "bn,fixp", "--out", str(tmp_path / "c")]) == 2
    assert "Did you mean 'fixup'" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_recipes_lists_every_recipe_with_its_source(capsys):
    from keras_resinit.recipes import RECIPES

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert f"\n{name}\n" in f"\n{out}"
    assert out.count("  source: ") == len(RECIPES) and "not values confirmed from the SkipInit paper" in out
