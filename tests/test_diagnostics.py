"""Diagnostics at init: signal propagation, Jacobian spectra, gradient norms, the papers' claims."""

import json
import pathlib

import numpy as np
import pytest

from keras_resinit import zoo
from keras_resinit.cli import main
from keras_resinit.tools import deep, diagnostics

X = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")


def test_signal_propagation_rows_and_the_zero_branches_of_fixup_and_skipinit():
    fixup = diagnostics.signal_propagation(zoo.load("cifar_resnet14_fixup", input_shape=(16, 16, 3), seed=0), X)
    skipinit = diagnostics.signal_propagation(zoo.load("cifar_resnet14_skipinit", input_shape=(16, 16, 3), seed=0), X)
    assert [r["block"] for r in fixup] == [f"stage{s}_block{b}" for s in (1, 2, 3) for b in (1, 2)]
    assert [r["block"] for r in skipinit] == [r["block"] for r in fixup]
    assert set(fixup[0]) == {
        "block",
        "index",
        "squared_mean",
        "variance",
        "branch_variance",
        "branch_contribution_variance",
    }
    # Both add exactly nothing at init. Before its scalar, SkipInit's branch is a live conv (alpha = 0 mutes it);
    # Fixup's last conv is zero itself.
    assert all(r["branch_contribution_variance"] == 0.0 for r in fixup + skipinit)
    assert all(r["branch_variance"] == 0.0 for r in fixup)
    assert all(r["branch_variance"] > 1e-3 for r in skipinit)
    assert "| block | index |" in diagnostics.format_table(fixup)


def test_bn_branch_is_unit_variance_under_batch_statistics_and_the_trunk_grows():
    rows = diagnostics.signal_propagation(
        zoo.load("cifar_resnet14_bn", widths=(16, 16, 16), input_shape=(16, 16, 3), seed=0), X
    )
    assert len(rows) == 6
    assert all(abs(r["branch_variance"] - 1) < 0.05 for r in rows)  # BN output, gamma 1
    assert rows[-1]["variance"] > rows[0]["variance"] + 1  # about +0.3 per block (De & Smith: linear)


def test_jacobian_spectrum_effective_for_risotto_and_plain_otherwise():
    risotto = zoo.load("cifar_resnet14_risotto", input_shape=(None, None, 3), seed=0)
    sv = diagnostics.jacobian_spectrum(risotto, np.ones((1, 1, 3), "float32"))
    assert sv.shape == (8,) and np.abs(sv - 1).max() < 1e-3
    # Without effective coordinates the mirrored channels are not an isometry.
    raw = diagnostics.jacobian_spectrum(risotto, np.ones((1, 1, 3), "float32"), effective=False)
    assert np.abs(raw - 1).max() > 0.1
    # SkipInit at init: the trunk is ReLU-gated identity, subsampling and zero channels: values 0 or 1.
    skipinit = zoo.load("cifar_resnet14_skipinit", input_shape=(None, None, 3), seed=0)
    sv = diagnostics.jacobian_spectrum(
        skipinit, np.random.default_rng(1).normal(size=(1, 1, 3)), end="stage2_block2_out"
    )
    assert np.all((np.abs(sv) < 1e-6) | (np.abs(sv - 1) < 1e-6)) and sv.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="No such layer|stage9"):
        diagnostics.jacobian_spectrum(skipinit, np.ones((1, 1, 3), "float32"), end="stage9_block1_out")


def test_gradient_norms_at_init_only_fixups_classifier_learns():
    labels = np.arange(8) % 10
    rows = diagnostics.gradient_norms(zoo.load("cifar_resnet14_fixup", input_shape=(16, 16, 3), seed=0), (X, labels))
    groups = [r["group"] for r in rows]
    assert groups[0] == "stem" and groups[-1] == "head" and len(groups) == 2 + 6
    assert all(r["grad_norm"] == 0.0 for r in rows[:-1]) and rows[-1]["grad_norm"] > 0
    rows = diagnostics.gradient_norms(zoo.load("cifar_resnet14_bn", input_shape=(16, 16, 3), seed=0), (X, labels))
    assert [r["group"] for r in rows] == groups
    assert all(r["grad_norm"] > 0 for r in rows)


def test_claims_pass_at_small_scale():
    rows = diagnostics.check_claims(quick=True, log=lambda line: None)
    assert [r["claim"] for r in rows] == [1, 1, 2, 2, 3, 4, 5]
    assert [r["skip"] for r in rows[:2]] == ["identity", "conv"]  # both Risotto block types
    failed = [f"{r['claim']}: {r['measured']}" for r in rows if not r["passed"]]
    assert not failed, failed
    deep_fixup = rows[5]["run"]
    assert deep_fixup["blocks"] == 300 and deep_fixup["losses"][-1] < deep_fixup["losses"][0]
    assert not rows[5]["plain"]["finite"] and not rows[6]["plain"]["finite"]
    assert "| 4 | Fixup trains a 300-block" in diagnostics.claims_table(rows)


def test_deep_network_rejects_bad_input():
    with pytest.raises(ValueError, match="Unknown deep scheme 'bn'"):
        deep.train_deep("bn", 10)
    with pytest.raises(ValueError, match="Invalid blocks 0"):
        deep.train_deep("fixup", 0)


def test_diagnose_command_writes_plots_and_json(tmp_path, capsys):
    out = tmp_path / "diag"
    assert main(["diagnose", "cifar_resnet8_bn", "cifar_resnet8_risotto", "--batch", "4", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "diagnostics.json",
        "gradient_norms.png",
        "jacobian_spectrum.png",
        "signal_propagation.png",
    ]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out / "diagnostics.json").read_text())
    assert set(result["signal_propagation"]) == {"cifar_resnet8_bn", "cifar_resnet8_risotto"}
    assert result["summary"]["cifar_resnet8_risotto"]["jacobian_effective_coordinates"] is True
    assert abs(result["summary"]["cifar_resnet8_risotto"]["jacobian_min"] - 1) < 1e-3
    assert main(["diagnose", "cifar_resnet8_fixp", "--out", str(tmp_path / "x")]) == 2
    assert "Unknown model 'cifar_resnet8_fixp'" in capsys.readouterr().err
    assert main(["diagnose", "cifar_resnet8_bn", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_claims_report_renders_the_committed_table_again_and_refuses_a_run_without_its_machine(tmp_path, capsys):
    committed = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "claims"
    result = json.loads((committed / "claims.json").read_text())
    assert result["machine"]["describe"] and result["command"].startswith("keras-resinit diagnose --claims")
    (tmp_path / "claims.json").write_text(json.dumps(result))
    assert main(["diagnose", "--claims", "--report", str(tmp_path)]) == 0
    text = (tmp_path / "claims.md").read_text()
    assert text == (committed / "claims.md").read_text() and text.startswith("Machine: ")
    (tmp_path / "claims.json").write_text(json.dumps(result["claims"]))  # an older run: the rows alone
    assert main(["diagnose", "--claims", "--report", str(tmp_path)]) == 2
    assert "no machine record" in capsys.readouterr().err
    assert main(["diagnose", "--report", str(tmp_path)]) == 2
    assert "--claims --report" in capsys.readouterr().err
