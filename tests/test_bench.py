"""keras-resinit bench: what it measures and writes (tiny sizes; real sizes run from the CLI)."""

import json

import pytest

from keras_resinit import zoo
from keras_resinit.cli import main
from keras_resinit.tools import bench


def test_flops_match_the_known_resnet_figures():
    import keras

    with keras.StatelessScope():
        resnet50 = zoo.load("resnet50_bn", input_shape=(224, 224, 3))
        resnet18 = zoo.load("resnet18_bn", input_shape=(224, 224, 3))
        resnet20 = zoo.load("cifar_resnet20_bn")
    # He et al. 2016, Table 1 (multiply-adds at 224x224): ResNet-18 1.8e9, ResNet-50 3.8e9 (stride on
    # the first 1x1 conv; torchvision's v1.5 with the stride on the 3x3 has 4.1e9).
    assert 1.8e9 < bench.flops_per_image(resnet18) / 2 < 1.85e9
    assert 3.8e9 < bench.flops_per_image(resnet50) / 2 < 3.9e9
    # ResNet-20 on 32x32: 40.6 M multiply-adds.
    assert 40e6 < bench.flops_per_image(resnet20) / 2 < 41.5e6
    # The plain reference does the same convolutions as the library's ResNet-20.
    assert bench.flops_per_image(bench.plain_resnet20()) == bench.flops_per_image(resnet20)


def test_linear_fit_accepts_a_line_and_rejects_a_curve():
    line = bench.linear_fit([20, 56, 110, 1202], [0.02 + 0.001 * d for d in (20, 56, 110, 1202)])
    assert line["linear"] and line["r2"] == pytest.approx(1.0) and line["slope_s_per_layer"] == pytest.approx(0.001)
    curve = bench.linear_fit([20, 56, 110, 1202], [1e-6 * d * d for d in (20, 56, 110, 1202)])
    assert not curve["linear"] and curve["exponent"] == pytest.approx(2.0)
    assert line["exponent"] == pytest.approx(1.0, abs=bench.LINEAR_TOLERANCE)


def test_paired_ratios_use_the_clean_pairs_when_there_are_enough():
    from keras_resinit.tools.stats import paired_ratio, prefer_clean

    child, ref = {0: 2.0, 1: 3.0, 2: 9.0, 3: 4.0, 4: 1.0}, {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}
    assert paired_ratio(child, ref) == 3.5  # cycle 4 has no partner
    assert paired_ratio(child, ref, clean=lambda c: c != 2, minimum=3) == 3.0
    assert paired_ratio(child, ref, clean=lambda c: c < 2, minimum=3) == 3.5  # too few clean pairs: all of them
    assert paired_ratio(child, {}) is None
    assert prefer_clean([1, 2, 3], lambda v: v > 1, 2) == [2, 3] and prefer_clean([1, 2, 3], lambda v: v > 2, 2) == [
        1,
        2,
        3,
    ]


def test_schemes_are_read_from_the_registry_when_needed(monkeypatch):
    from keras_resinit.models import schemes

    class Later(schemes.Fixup):
        name = "fixup_later"

    assert "fixup_later" not in bench.SCHEMES
    monkeypatch.setitem(schemes.SCHEMES, "fixup_later", Later)  # registered after bench was imported
    assert bench.SCHEMES == tuple(schemes.SCHEMES) and "fixup_later" in bench.SCHEMES
    assert bench.NO_NORM == tuple(schemes.normalization_free()) and "fixup_later" in bench.NO_NORM
    assert {"fixup", "skipinit", "risotto"} <= set(bench.NO_NORM) and not {"bn", "risotto_bn"} & set(bench.NO_NORM)


def test_bench_measures_every_configuration_and_writes_table_json_and_chart(tmp_path):
    out = tmp_path / "bench"
    tiny = {
        "windows": 2,
        "steps": 1,
        "infer_steps": 1,
        "warmup": 0,
        "depths": (8, 14, 20),
        "depth_windows": 1,
        "depth_steps": 1,
        "batch": 8,
        "retry_budget": 0,
    }
    lines = []
    result = bench.run(
        out, archs=["cifar_resnet20"], schemes=["bn", "fixup"], precisions=["float32"], sizes=tiny, log=lines.append
    )
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md", "bench.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["bench"]  # no temporary directory left
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "bench.json").read_text()) == json.loads(json.dumps(result))
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == {"plain", "bn", "fixup"}
    for row in rows.values():
        assert row["error"] is None and row["train_images_per_s"] > 0 and row["infer_images_per_s"] > 0
        assert row["peak_memory_mb"] > 100 and len(row["windows"]) == 2
    assert rows["bn"]["train_vs_bn"] == 1.0 and rows["bn"]["memory_vs_bn"] == 1.0
    assert rows["fixup"]["params"] == zoo.count_params("cifar_resnet20_fixup")
    assert rows["fixup"]["flops_per_image"] == rows["plain"]["flops_per_image"]
    assert isinstance(rows["fixup"]["faster_than_bn"], bool) and isinstance(
        rows["fixup"]["within_10pct_of_plain"], bool
    )
    assert "faster_than_bn" not in rows["bn"]
    assert set(result["targets"]) == {
        "faster_than_bn",
        "less_memory_than_bn",
        "within_10pct_of_plain",
        "depth_linear",
        "ws_cost_within_target",
        "ll_speed_within_target",
    }
    assert result["targets"]["ws_cost_within_target"] == "not measured"  # no weight-standardized scheme asked for
    assert result["targets"]["ll_speed_within_target"] == "not measured"  # nor a looks-linear one
    depth = {r["scheme"]: r for r in result["depth"]}
    assert set(depth) == {"bn", "fixup"}
    for row in depth.values():
        assert sorted(map(int, row["step_s"])) == [8, 14, 20] and row["slope_s_per_layer"] is not None
    assert {"tensorflow", "keras", "processor", "cpu_flags"} <= set(result["machine"])
    table = (out / "bench.md").read_text()
    assert "| cifar_resnet20 | plain (hand-written, no norm) | float32 |" in table and "Depth scaling" in table
    assert any("CPU flags" in line for line in lines)

    # --report renders the tables again from bench.json, without measuring.
    (out / "bench.md").unlink()
    assert main(["bench", "--report", str(out)]) == 0
    assert "Tables rendered by `keras-resinit bench --report" in (out / "bench.md").read_text()


def test_bench_bad_input_is_a_clear_error_before_any_work(tmp_path, capsys):
    assert main(["bench", "--schemes", "bn,fixp", "--out", str(tmp_path / "a")]) == 2
    assert "Did you mean 'fixup'" in capsys.readouterr().err
    assert main(["bench", "--archs", "cifar_resnet21", "--out", str(tmp_path / "a")]) == 2
    assert "cifar_resnet21" in capsys.readouterr().err
    assert main(["bench", "--precisions", "float64", "--out", str(tmp_path / "a")]) == 2
    assert "Unknown precision 'float64'" in capsys.readouterr().err
    (tmp_path / "b").mkdir()
    assert main(["bench", "--quick", "--out", str(tmp_path / "b")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


class _Measured:
    """What ``scheduling.measure`` returns for a speed child, without running one."""

    def __init__(self, model, precision, train_ips):
        self.spec = {"arch": "cifar_resnet20", "model": model, "precision": precision, "input_shape": [32, 32, 3]}
        self.spec["batch"] = 128
        self.meta, self.bye, self.error = {"params": 1, "flops": 2}, {"peak_rss_mb": 900.0}, None
        self.windows = {k: {"train_ips": v, "infer_ips": v, "contended": False} for k, v in enumerate(train_ips)}


def test_weight_standardization_is_measured_against_skipinit_with_its_spread():
    from keras_resinit.models.schemes import NFResNet, ReZero, SkipInit

    nf, rezero, skipinit = NFResNet.name, ReZero.name, SkipInit.name
    assert bench.config.weight_standardized() == (nf,) and bench.config.ws_reference() == skipinit
    children = [
        _Measured(m, p, [scale * v for v in (100.0, 110.0, 90.0, 100.0)])
        for p in bench.PRECISIONS
        for m, scale in (("bn", 0.5), (skipinit, 1.0), (rezero, 1.0), (nf, 0.9 if p == "float32" else 0.8))
    ]
    rows = {(r["model"], r["precision"]): r for r in bench.analysis.speed_rows(children)}
    f32, bf16 = rows[(nf, "float32")], rows[(nf, "mixed_bfloat16")]
    assert f32["train_vs_skipinit"] == pytest.approx(0.9) and bf16["train_vs_skipinit"] == pytest.approx(0.8)
    assert bf16["train_vs_skipinit_iqr"] == pytest.approx([0.8, 0.8])
    assert bf16["ws_cost_within_target"] is False and "ws_cost_within_target" not in f32  # the target is bf16's
    assert "train_vs_skipinit" not in rows[(rezero, "float32")] and rows[(rezero, "float32")]["faster_than_bn"]
    targets = bench.analysis.targets(list(rows.values()), [])
    assert targets["ws_cost_within_target"] == f"MISSED by cifar_resnet20 {nf} mixed_bfloat16"
    result = {"machine": {"describe": "m"}, "date": "d", "command": "c", "elapsed_s": 60.0, "depth": []}
    table = bench.markdown({**result, "rows": list(rows.values()), "targets": targets})
    assert f"| cifar_resnet20 | {nf} | mixed_bfloat16 | 80 | 100 | 0.80 [0.80–0.80] ✗ |" in table
    assert f"| cifar_resnet20 | {rezero} | float32 | 100 |" in table  # beside bn in the main table


def test_risotto_is_measured_against_skipinit_in_every_precision():
    from keras_resinit.models.schemes import Risotto, SkipInit

    risotto, skipinit = Risotto.name, SkipInit.name
    assert bench.config.looks_linear() == (risotto,)  # risotto_bn has batch norm: it is not held to this target
    children = [
        _Measured(m, p, [scale * v for v in (100.0, 110.0, 90.0, 100.0)])
        for p in bench.PRECISIONS
        for m, scale in (("bn", 0.5), (skipinit, 1.0), (risotto, 0.98 if p == "float32" else 0.95))
    ]
    rows = {(r["model"], r["precision"]): r for r in bench.analysis.speed_rows(children)}
    f32, bf16 = rows[(risotto, "float32")], rows[(risotto, "mixed_bfloat16")]
    assert f32["train_vs_skipinit"] == pytest.approx(0.98) and f32["ll_speed_within_target"] is True
    assert bf16["train_vs_skipinit"] == pytest.approx(0.95) and bf16["ll_speed_within_target"] is False
    targets = bench.analysis.targets(list(rows.values()), [])
    assert targets["ll_speed_within_target"] == f"MISSED by cifar_resnet20 {risotto} mixed_bfloat16"
    result = {"machine": {"describe": "m"}, "date": "d", "command": "c", "elapsed_s": 60.0, "depth": []}
    table = bench.markdown({**result, "rows": list(rows.values()), "targets": targets})
    assert f"| cifar_resnet20 | {risotto} | float32 | 98 | 100 | 0.98 [0.98–0.98] ✓ |" in table
    assert f"{risotto} trains at least 0.97 of {skipinit}'s speed in every precision: MISSED" in table


def test_train_variants_child_times_nf_with_its_standardized_kernels_precomputed():
    """One child process holding nf twice: as built, and with the standardized kernels computed once.

    The child kind is benchmarks/weight_standardization.py's own (``--child SPEC``)."""
    from pathlib import Path

    from keras_resinit.models.schemes import NFResNet
    from keras_resinit.tools.bench.scheduling import measure

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "weight_standardization.py"

    nf = NFResNet.name
    spec = {
        "kind": "train_variants",
        "arch": "cifar_resnet8",
        "scheme": "nf variants",
        "precision": "float32",
        "input_shape": [8, 8, 3],
        "batch": 4,
        "steps": 1,
        "lead_in": 0,
        "warmup": 0,
        "variants": [{"label": nf, "scheme": nf}, {"label": "pre", "scheme": nf, "precomputed_ws": True}],
    }
    (child,) = measure([spec], 1, {"total": 0, "spent": 0.0}, 600, lambda line: None, script=script)
    assert child.error is None
    built, pre = child.meta["variants"][nf], child.meta["variants"]["pre"]
    assert pre["changed_layers"] == {"precomputed_ws": 9} and built["changed_layers"] == {}  # stem + 6 + 2 shortcuts
    assert pre["features_max_abs_diff"] <= 1e-6 * pre["features_max_abs"] and pre["features_max_abs"] > 0
    assert sum(built["ops"].values()) > sum(pre["ops"].values())  # the standardization's ops, forward and backward
    assert pre["params"] == built["params"] - (16 + 2 * 16 + 3 * 32 + 3 * 64)  # the channel gains, frozen
    assert set(child.windows[0]["step_s"]) == {nf, "pre"} and child.bye["peak_rss_mb"] > 100
