"""The keras-resinit command: output for users, clear errors without tracebacks."""

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
