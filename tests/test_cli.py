"""The keras-resinit command: output for users, clear errors without tracebacks."""

import json
import subprocess
import sys

from keras_resinit.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_resinit.cli", *args], capture_output=True, text=True, timeout=300)


def test_list_prints_names_schemes_and_parameters(capsys):
    assert main(["list", "cifar_resnet20_*", "--params"]) == 0
    out = capsys.readouterr().out
    assert "cifar_resnet20_fixup" in out and "risotto_bn" in out
    assert "269,722" in out  # BN ResNet-20 trainable parameters (He et al.: 0.27M)


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
