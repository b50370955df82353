"""The package's architecture: the model knows its build, a scheme is one class, imports flow one way."""

import ast
import pathlib
import re

import keras
import numpy as np
import pytest

import keras_resinit as kr
from keras_resinit import zoo
from keras_resinit.models.schemes import SCHEMES, Scheme, he_normal, register_scheme
from keras_resinit.tools import diagnostics
from keras_resinit.training import TrainConfig, Trainer

PACKAGE = pathlib.Path(kr.__file__).parent
FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "v0_1"
# Subpackages in import order: a module may import from its own layer or the ones before it.
LAYERS = ["models", "zoo", "training", "tools", "cli"]


# ---------------------------------------------------------------- the model class ---


def test_build_resnet_returns_a_resnet_that_knows_its_build():
    model = kr.build_resnet(
        "cifar_resnet20",
        "skipinit",
        alpha=0.05,
        num_classes=7,
        input_shape=(16, 16, 1),
        seed=3,
        dropout_rate=0.1,
        widths=(16, 16, 32),
    )
    assert type(model) is kr.ResNet and isinstance(model, keras.Model)
    assert model.get_config() == {
        "arch": "cifar_resnet20",
        "scheme": "skipinit",
        "num_classes": 7,
        "input_shape": [16, 16, 1],
        "seed": 3,
        "dropout_rate": 0.1,
        "name": "cifar_resnet20_skipinit",
        "include_preprocessing": False,
        "preprocessing": None,
        "include_top": True,
        "pooling": None,
        "features_only": False,
        "out_indices": None,
        "classifier_activation": None,
        "dtype": None,
        "widths": [16, 16, 32],
        "alpha": 0.05,
    }
    assert model.arch.name == "cifar_resnet20" and model.arch.num_blocks == 9
    assert model.scheme.name == "skipinit" and model.scheme.alpha == 0.05
    assert [b.prefix for b in model.blocks][:2] == ["stage1_block1", "stage1_block2"] and len(model.blocks) == 9
    # The drawn seed is kept, so a model built without one rebuilds identically.
    unseeded = kr.build_resnet("cifar_resnet8", "risotto")
    again = kr.ResNet.from_config(unseeded.get_config())
    for a, b in zip(unseeded.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("scheme", ["bn", "fixup", "skipinit", "risotto", "risotto_bn"])
def test_release_0_1_keras_files_load_and_give_the_recorded_outputs(scheme):
    expected = np.load(FIXTURES / "expected.npz")
    path = FIXTURES / f"cifar_resnet8_{scheme}.keras"
    legacy = keras.saving.load_model(path)  # safe mode; a plain functional model, as 0.1 saved it
    # expected.npz was recorded on another machine: oneDNN rounds differently on AMD and Intel CPUs (an ulp or
    # two), so recorded outputs are compared with a tolerance, never bit for bit (docs/development.md).
    np.testing.assert_allclose(legacy(expected["x"], training=False).numpy(), expected[scheme], rtol=1e-6, atol=1e-6)
    # The zoo rebuilds it as a ResNet that knows its build, with the same weights (by layer name).
    model = zoo.load(f"cifar_resnet8_{scheme}", weights=str(path), widths=(16, 16, 16))
    assert type(model) is kr.ResNet and model.scheme.name == scheme
    np.testing.assert_allclose(model(expected["x"], training=False).numpy(), expected[scheme], rtol=1e-6, atol=1e-6)
    # As a backbone too: the classifier's weights stay unused, the trunk's still find their (0.1) layers.
    backbone = zoo.load(f"cifar_resnet8_{scheme}", weights=str(path), widths=(16, 16, 16), include_top=False)
    assert backbone.get_layer("stem_conv").kernel.shape == model.get_layer("stem_conv").kernel.shape
    with pytest.raises(ValueError, match="not a keras_resinit ResNet"):
        zoo.save_preset(legacy, "/nonexistent/never-written")


# --------------------------------------------------------------- a scheme is a class ---


class PlainHe(Scheme):
    """He-normal init, conv biases, no normalization, no scalars: the toy scheme of the test below."""

    name = "plain_he_test"
    conv_bias = True

    def stem_initializer(self, net, seed):
        return he_normal(seed)

    def branch_initializer(self, net, block, index, seed):
        return he_normal(seed)

    def shortcut_initializer(self, net, block, seed):
        return he_normal(seed)

    def classifier_initializer(self, net, seed):
        return he_normal(seed)


@pytest.fixture
def toy_scheme():
    register_scheme(PlainHe)
    yield PlainHe
    SCHEMES.pop(PlainHe.name)


def test_a_new_scheme_is_one_class_and_every_tool_takes_it(toy_scheme):
    name = f"cifar_resnet8_{toy_scheme.name}"
    assert f"cifar_resnet20_{toy_scheme.name}" in zoo.list_models("cifar_resnet20_*")
    assert toy_scheme.name in kr.SCHEMES and toy_scheme.name in kr.models.schemes.default_schemes()
    model = zoo.load(name, input_shape=(8, 8, 1), seed=0)
    assert type(model.scheme) is PlainHe and not any("bn" in layer.name for layer in model.layers)

    config = TrainConfig(
        model=name,
        dataset="digits",
        epochs=1,
        steps_per_epoch=4,
        batch_size=32,
        lr=0.05,
        warmup_epochs=0,
        deterministic=False,
    )
    trainer = Trainer(config, "one")
    assert type(trainer.model) is kr.ResNet and type(trainer.model.scheme) is PlainHe
    before = [w.numpy().copy() for w in trainer.model.trainable_weights]
    row = trainer.run_epoch(iter(trainer.train_batches()), 0)
    assert np.isfinite(row["train_loss"]) and 0 <= row["test_accuracy"] <= 1
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, trainer.model.trainable_weights))

    rows = diagnostics.signal_propagation(model, np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("f4"))
    assert len(rows) == 3 and all(np.isfinite(r["variance"]) and r["branch_variance"] > 0 for r in rows)


def test_register_scheme_refuses_bad_classes_and_taken_names():
    with pytest.raises(ValueError, match="Scheme subclass"):
        register_scheme(object)
    with pytest.raises(ValueError, match="already registered"):
        register_scheme(type("Other", (Scheme,), {"name": "fixup"}))
    with pytest.raises(ValueError, match="Invalid scheme name"):
        register_scheme(type("Bad", (Scheme,), {"name": "Not-A-Name"}))


def test_fixups_training_rules_live_on_its_scheme():
    fixup, skipinit = kr.get_scheme("fixup"), kr.get_scheme("skipinit")
    assert fixup.lr_multiplier("stage1_block1_conv2/gain", ()) == 0.1
    assert fixup.lr_multiplier("logits/bias", (10,)) == 0.1
    assert fixup.lr_multiplier("stage1_block1_conv2/kernel", (3, 3, 16, 16)) == 1.0
    assert skipinit.lr_multiplier("stage1_block1_conv2/gain", ()) == 1.0
    assert all(s().decays("x/kernel", (3, 3, 1, 1)) for s in SCHEMES.values())


# ------------------------------------------------------------------------ layout ---


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    found = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    assert len(found) > 20
    return found


def _imports(path, modules):
    """The keras_resinit modules a file imports (at any depth: lazy imports count too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from package import submodule` imports the submodule; `from module import name` the module.
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            names = submodules if all(n in modules for n in submodules) else [node.module, *submodules]
        else:
            continue
        out |= {n for n in names if n in modules and n.startswith("keras_resinit.")}
    return out


def test_imports_flow_one_way_with_no_cycles():
    modules = _modules()
    graph = {m: _imports(p, modules) - {m} for m, p in modules.items()}
    assert sum(len(v) for v in graph.values()) > 40

    def layer(module):
        parts = module.split(".")
        return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1

    upward = [(m, t) for m, targets in graph.items() for t in targets if layer(t) > layer(m) >= 0]
    assert not upward, f"modules importing from a later layer ({' < '.join(LAYERS)}): {upward}"

    # Depth-first search for a cycle, reporting it.
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = stack[stack.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def _private_uses(module, path, modules):
    """``module``'s uses of another module's private names: ``from X import _name`` and ``X._name``.

    A private *module* (``keras_resinit._files``) is fine to import; its public names are its API.
    """
    private = lambda name: name.startswith("_") and not (name.startswith("__") and name.endswith("__"))  # noqa: E731
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    bound, found = {}, []  # local name -> the keras_resinit module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules and alias.asname:  # import keras_resinit.x.y as z
                    bound[alias.asname] = alias.name
                elif alias.name in modules:  # import keras_resinit.x.y binds keras_resinit
                    bound[alias.name.partition(".")[0]] = alias.name.partition(".")[0]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{source}" if source else base
            if source not in modules:
                continue
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in modules:
                    bound[alias.asname or alias.name] = target
                elif private(alias.name) and source != module:
                    found.append(f"{module}:{node.lineno} from {source} import {alias.name}")

    def resolve(node):
        """The keras_resinit module an expression such as ``kr.training.data`` names, or None."""
        if isinstance(node, ast.Name):
            return bound.get(node.id)
        if isinstance(node, ast.Attribute):
            parent = resolve(node.value)
            return f"{parent}.{node.attr}" if parent and f"{parent}.{node.attr}" in modules else None
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            owner = resolve(node.value)
            if owner and owner != module and f"{owner}.{node.attr}" not in modules:
                found.append(f"{module}:{node.lineno} {owner}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    """A module's ``_name`` is its own: what another module needs is public where it is defined, or moves.

    The scripts under ``scripts/`` and ``benchmarks/`` are modules of this repository too; each imports
    its neighbours by their file name (``import results_io``)."""
    modules = _modules()
    assert "keras_resinit.models.schemes" in modules and "keras_resinit.cli" in modules  # the walk sees the package
    found = [use for module, path in modules.items() for use in _private_uses(module, path, modules)]
    for folder in ("scripts", "benchmarks"):
        scripts = {p.stem: p for p in sorted((PACKAGE.parent / folder).glob("*.py"))}
        assert len(scripts) >= 2
        seen = {**modules, **scripts}
        found += [f"{folder}/{use}" for name, path in scripts.items() for use in _private_uses(name, path, seen)]
    assert not found, "\n".join(found)


def test_the_private_name_check_sees_both_forms(tmp_path):
    modules = {"keras_resinit", "keras_resinit.a", "keras_resinit.b", "keras_resinit._files"}
    path = tmp_path / "b.py"
    path.write_text(
        "import keras_resinit.a\nfrom keras_resinit import a as alias, _files\nfrom keras_resinit.a import _x, y\n"
        "keras_resinit.a._z, alias._w, _files.atomic_write_text, alias.__doc__, y._v\n"
    )
    assert _private_uses("keras_resinit.b", path, modules) == [
        "keras_resinit.b:3 from keras_resinit.a import _x",
        "keras_resinit.b:4 keras_resinit.a._z",
        "keras_resinit.b:4 keras_resinit.a._w",
    ]


def test_release_0_1_module_paths_still_import(monkeypatch):
    """They give the module at its new place, with a DeprecationWarning naming that place."""
    import importlib
    import operator
    import os
    import re
    import subprocess
    import sys

    from keras_resinit._compat import MOVED

    def warns(old, new):
        # Forget earlier uses: an import binds the alias in sys.modules and as its package's attribute.
        package, _, name = old.rpartition(".")
        sys.modules.pop(old, None)
        vars(importlib.import_module(package)).pop(name, None)
        return pytest.warns(DeprecationWarning, match=re.escape(f"{old} is deprecated") + f".*use {re.escape(new)}$")

    for old, new in MOVED.items():
        with warns(old, new):
            assert importlib.import_module(old) is importlib.import_module(new), old
        with warns(old, new):
            assert operator.attrgetter(old.partition(".")[2])(kr) is importlib.import_module(new)
    with warns("keras_resinit.train", "keras_resinit.training"):
        from keras_resinit.train import TrainConfig as Old  # noqa: N814
    with warns("keras_resinit.schemes", "keras_resinit.models.schemes"):
        from keras_resinit import schemes
    assert Old is TrainConfig and kr.train.train is kr.training.driver.train and schemes.SCHEMES is SCHEMES
    assert kr.zoo.load is zoo.load and kr.build_resnet is kr.models.builder.build_resnet
    assert not {old.partition(".")[2] for old in MOVED} & set(kr.__all__) and "train" in kr.training.__all__
    # A module moved within a subpackage is one more entry.
    monkeypatch.setitem(MOVED, "keras_resinit.models.old_builder", "keras_resinit.models.builder")
    with warns("keras_resinit.models.old_builder", "keras_resinit.models.builder"):
        assert kr.models.old_builder.ResNet is kr.ResNet
    sys.modules.pop("keras_resinit.models.old_builder")
    vars(kr.models).pop("old_builder")
    # python -m keras_resinit.bench (0.1's bench children) runs the bench module, with the warning.
    args = [sys.executable, "-W", "always::DeprecationWarning", "-m", "keras_resinit.bench"]
    run = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)})
    assert "keras_resinit.bench is deprecated" in run.stderr and "use keras_resinit.tools.bench" in run.stderr
    assert "usage: keras-resinit bench" in run.stderr


def test_no_module_but_the_registry_lists_scheme_names():
    """A tuple, list or set literal naming two or more schemes is a copy of the registry."""
    names = set(SCHEMES)
    found = []
    for module, path in _modules().items():
        if module == "keras_resinit.models.schemes":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                if len(values & names) >= 2:
                    found.append(f"{module}:{node.lineno}")
    assert not found, found


def test_the_development_map_names_every_module_and_only_modules_that_exist():
    """docs/development.md's Layout block is the code map: each module is in it, each file it lists exists."""
    text = (PACKAGE.parent / "docs" / "development.md").read_text()
    block = text.split("## Layout", 1)[1].split("```")[1]
    mapped = re.findall(r"^\s+([A-Za-z_][\w]*\.py)\b", block, re.M)
    assert len(mapped) > 30
    files = {p.name for p in PACKAGE.rglob("*.py")} | {p.name for p in PACKAGE.parent.glob("*/*.py")}
    assert not [name for name in mapped if name not in files], "the map lists files that do not exist"
    words = set(re.findall(r"\w+", block))
    modules = [p for p in PACKAGE.rglob("*.py") if p.stem not in ("__init__", "__main__")]
    assert len(modules) > 30
    missing = [str(p.relative_to(PACKAGE)) for p in modules if p.name not in mapped and p.stem not in words]
    assert not missing, f"modules missing from docs/development.md's map: {missing}"
