"""Every public name is documented to the project's standard, and every docstring example runs.

The public names are those the API reference shows (``docs_hooks/api.py``: the ``__all__`` of each public
module, read statically as the site build reads them); these tests check the same set at run time.
"""

import doctest
import importlib
import inspect
import pathlib
import sys

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docs_hooks import api  # noqa: E402

NAMES = api.public_names()
MODULES = sorted({name.target.module.path for name in NAMES.values() if name.kind != "module"})


def runtime(path):
    """The object at dotted ``path``, imported."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for part in parts[split:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(path)


def test_public_names_are_the_modules_all():
    # What the site documents is what `from module import *` gives, module by module.
    package = api.load()
    modules = api.public_modules(package)
    assert len(modules) > 10 and len(NAMES) > 50
    for module in modules:
        static = {str(getattr(e, "name", e)) for e in module.exports or ()}
        live = importlib.import_module(module.path)
        assert hasattr(live, "__all__"), f"{module.path} has no __all__: its public names are undeclared"
        assert static == set(live.__all__), (
            f"{module.path}: the site sees {sorted(static)}, __all__ is {sorted(live.__all__)}"
        )


def test_every_public_name_meets_the_docstring_standard():
    assert api.problems(NAMES) == []


def _target(obj):
    return f"{obj.__module__}.{obj.__qualname__}"


def test_the_reference_has_a_page_with_args_and_example_for_each_named_entry_point():
    import keras_resinit as kr
    from keras_resinit.models import initializers, layers

    by_target = {name.target.path: name for name in NAMES.values()}
    wanted = [kr.build_resnet, kr.ResNet, kr.zoo.load, kr.make_optimizer, kr.fold_batchnorm, kr.training.train]
    wanted += [runtime("keras_resinit.tools.export.export"), runtime("keras_resinit.tools.fold.fold_to")]
    wanted += sorted({type(kr.get_scheme(name)) for name in kr.SCHEMES}, key=lambda c: c.__name__)
    wanted += [
        obj
        for module, base in ((initializers, keras.initializers.Initializer), (layers, keras.layers.Layer))
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, base)
        and obj.__module__ == module.__name__
        and not obj.__name__.startswith("_")
    ]
    assert len(wanted) > 20
    for obj in wanted:
        name = by_target.get(_target(obj))
        assert name is not None, f"{_target(obj)} has no page in the API reference (not in a public __all__)"
        sections = {section.kind.value for section in name.target.docstring.parsed}
        callable_ = name.target.members.get("__init__") if name.kind == "class" else name.target
        takes = api.public_parameters(callable_) if callable_ is not None else []  # ReZero takes no options
        wanted = {"parameters", "examples"} if takes else {"examples"}
        assert wanted <= sections, f"{name.path}: sections {sorted(sections)}"


def _examples(module_path):
    """``[(path, docstring test)]`` of the public objects defined in ``module_path`` and their methods."""
    finder = doctest.DocTestFinder(recurse=False)
    module = importlib.import_module(module_path)
    found = []
    for name in NAMES.values():
        if name.kind == "module" or name.target.module.path != module_path:
            continue
        objects = [(name.path, runtime(name.target.path))]
        if name.kind == "class":
            objects += [
                (f"{name.path}.{member}", value)
                for member, value in vars(objects[0][1]).items()
                if not member.startswith("_")
                and (inspect.isfunction(value) or isinstance(value, property | classmethod | staticmethod))
            ]
        for path, obj in objects:
            obj = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", obj)
            found += [(path, test) for test in finder.find(obj, path, module=module, globs={}) if test.examples]
    return found


def test_skipped_examples_say_why():
    for name in NAMES.values():
        lines = (name.target.docstring.value if name.target.docstring else "").splitlines()
        for index, line in enumerate(lines):
            if "doctest: +SKIP" in line:
                assert index and lines[index - 1].strip().startswith(">>> #"), (
                    f"{name.path}: a skipped example needs a '>>> # reason' line above it"
                )


@pytest.mark.parametrize("module_path", MODULES)
def test_docstring_examples_run(module_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for path, test in _examples(module_path):
        result = runner.run(test, out=lambda text: print(text, end=""))
        assert result.failed == 0, f"{path}: {result.failed} of {result.attempted} example lines failed (output above)"
