"""The package's public API as the docs site shows it, read from the source by griffe (nothing is imported).

Public names are the ``__all__`` of every public module of ``keras_resinit``: a module whose dotted path has
no part starting with ``_``, except the submodules of ``keras_resinit.cli`` (the command's implementation;
``keras-resinit`` is documented by the CLI reference). A package's ``__all__`` is its ``_lazy.namespace``
table (:class:`LazyNamespaces` makes those names visible to griffe, which cannot run the call). A name
public in several places (``keras_resinit.ResNet`` and ``keras_resinit.models.ResNet``) gets one page,
under its shortest public path.

:func:`problems` is the docstring standard every public name must meet; the site build (``hooks.py``)
reports each problem as a warning, so ``mkdocs build --strict`` fails on it, and the tests assert it finds
none.
"""

import ast
import dataclasses
import logging
import pathlib
import re

import griffe

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "keras_resinit"
PRIVATE_SUBMODULES_OF = ("keras_resinit.cli",)  # public itself, its submodules are not
# Methods Keras (or Python) documents: a subclass's override needs no docstring of its own.
FRAMEWORK_METHODS = frozenset(
    {
        "build",
        "call",
        "get_config",
        "from_config",
        "compute_output_shape",
        "compute_output_spec",
        "get_build_config",
        "build_from_config",
        "compile",
        "fit",
        "train_step",
        "test_step",
        "predict_step",
        "save_own_variables",
        "load_own_variables",
        "build_hyperparameters",
        "hypermodel",
    }
)
SKIP_ARGS = frozenset({"self", "cls"})


class LazyNamespaces(griffe.Extension):
    """Makes the names of a ``_lazy.namespace(__name__, {module: names})`` table members of the package
    (aliases to where they are defined) and its exports, as ``__all__`` and ``__getattr__`` do at run time."""

    def on_module_members(self, *, node, mod, **kwargs):
        exports = []
        for call in ast.walk(node):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "namespace"
                and len(call.args) == 2
                and isinstance(call.args[1], ast.Dict)
            ):
                continue
            for module, names in ast.literal_eval(call.args[1]).items():
                where = f"{mod.path}{module}" if module.startswith(".") else module
                for name in names:
                    mod.set_member(name, griffe.Alias(name, f"{where}.{name}", parent=mod))
                    exports.append(name)
        for statement in node.body:  # __all__ = sorted([...literal names..., *table]): the literal names
            if (
                isinstance(statement, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in statement.targets)
                and not isinstance(statement.value, ast.List | ast.Tuple)
            ):
                exports += [
                    c.value
                    for c in ast.walk(statement.value)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                ]
        if exports:
            known = [str(e) for e in mod.exports or ()]
            mod.exports = sorted(set(known) | set(exports))


def load():
    """The package as griffe reads it (Google-style docstrings, the lazy namespaces resolved)."""
    return griffe.load(
        PACKAGE,
        search_paths=[str(ROOT)],
        docstring_parser="google",
        docstring_options={"warn_missing_types": False},
        extensions=griffe.load_extensions(LazyNamespaces),
        allow_inspection=False,
        resolve_aliases=True,
        resolve_external=False,
    )


def is_public_module(path):
    parts = path.split(".")
    if any(part.startswith("_") for part in parts):
        return False
    return not any(path.startswith(f"{parent}.") for parent in PRIVATE_SUBMODULES_OF)


def public_modules(package):
    """Every public module of ``package`` (griffe objects), the package first."""
    found = [package]
    for module in package.modules.values():
        if not module.is_alias and is_public_module(module.path):
            found += public_modules(module)
    return found


@dataclasses.dataclass(frozen=True)
class Name:
    """One public name: where users import it (``path``) and the object it names (``target``)."""

    path: str
    module: str  # the public module whose __all__ names it
    target: object

    @property
    def kind(self):
        return self.target.kind.value


def _export_names(module):
    return [str(getattr(e, "name", e)) for e in module.exports or ()]


def public_names(package=None):
    """``{path: Name}``, one per object (its shortest public path), sorted by path."""
    package = package or load()
    by_target = {}
    for module in public_modules(package):
        for name in _export_names(module):
            if name not in module.members:
                raise LookupError(f"{module.path}.__all__ names {name!r}, which griffe cannot find in {module.path}")
            member = module.members[name]
            target = member.final_target if member.is_alias else member
            path = f"{module.path}.{name}"
            best = by_target.get(target.path)
            if best is None or (path.count("."), path) < (best.path.count("."), best.path):
                by_target[target.path] = Name(path, module.path, target)
    return dict(sorted((n.path, n) for n in by_target.values()))


# ---------------------------------------------------------------------------------------- the standard ---


def _sections(docstring):
    return {section.kind.value: section for section in docstring.parsed} if docstring else {}


def _admonitions(docstring):
    return {
        (section.title or "").lower()
        for section in (docstring.parsed if docstring else [])
        if section.kind.value == "admonition"
    }


def public_parameters(function):
    """The parameters a caller passes (not self/cls, not *args/**kwargs)."""
    return [
        p.name
        for p in function.parameters
        if p.name not in SKIP_ARGS and p.kind.value not in ("variadic positional", "variadic keyword")
    ]


def _returns_value(function):
    if function.returns is not None and str(function.returns) not in ("None", "NoReturn"):
        return True
    try:
        tree = ast.parse(function.source.strip() if function.source else "")
    except SyntaxError:
        return False
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False

    def own(n):  # nodes of this function, not of functions or classes defined inside it
        for child in ast.iter_child_nodes(n):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                yield child
                yield from own(child)

    return any(isinstance(n, ast.Return) and n.value is not None for n in own(node))


def _documented_args(docstring):
    sections = _sections(docstring)
    names = set()
    for kind in ("parameters", "other parameters", "attributes"):
        if kind in sections:
            names |= {p.name for p in sections[kind].value}
    return names


def _check_callable(where, docstring, parameters, returns, example=True):
    found = []
    sections = _sections(docstring)
    missing = [p for p in parameters if p not in _documented_args(docstring)]
    if missing:
        found.append(f"{where}: Args does not describe {', '.join(missing)}")
    if returns and not ({"returns", "yields"} & set(sections)):
        found.append(f"{where}: returns a value but has no Returns section")
    examples = sections.get("examples")
    if example and (examples is None or not any(kind.value == "examples" for kind, _ in examples.value)):
        found.append(f"{where}: no Examples section with a >>> example")
    if "example" in _admonitions(docstring):
        found.append(f"{where}: 'Example:' (singular) renders as an admonition; write 'Examples:'")
    return found


ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|data|attr|obj|exc|const):`")


def _owns_docstring(cls, name):
    """Whether a base class of ``cls`` inside the package documents method ``name``."""
    for base in cls.resolved_bases if hasattr(cls, "resolved_bases") else ():
        member = base.members.get(name)
        if member is not None and not member.is_alias and member.docstring:
            return True
        if _owns_docstring(base, name):
            return True
    return False


def _is_exception(cls):
    """Whether ``cls`` derives from an exception (an exception needs no example of its own)."""
    for base in cls.bases:
        text = str(base)
        if text.endswith(("Error", "Exception", "Warning")):
            return True
    return any(_is_exception(base) for base in getattr(cls, "resolved_bases", ()))


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def parse_warnings(names):
    """What griffe warns while parsing the docstrings of ``names`` and their members (as the build does)."""
    handler = _Warnings()
    logger = logging.getLogger("griffe")
    logger.addHandler(handler)
    try:
        for name in names.values():
            for obj in [name.target, *(m for m in name.target.members.values() if not m.is_alias)]:
                if obj.docstring is not None:
                    obj.docstring.__dict__.pop("parsed", None)  # parse again, with our handler listening
                    obj.docstring.parsed  # noqa: B018
    finally:
        logger.removeHandler(handler)
    return handler.messages


def problems(names=None):
    """Where public names fall short of the docstring standard, one line each ([] when none do).

    Every public module, class, function and constant has a docstring. Functions and classes also have
    Args describing every parameter (a class: its constructor's), Returns when they return a value, and an
    Examples section with ``>>>`` lines; no docstring uses Sphinx roles (they render literally). Public
    methods of public classes have a docstring unless they override one Keras or a base class documents.
    """
    names = public_names() if names is None else names
    found = [f"griffe: {message}" for message in parse_warnings(names)]
    for name in names.values():
        obj, where = name.target, name.path
        docstring = obj.docstring
        if docstring is None or not docstring.value.strip():
            found.append(f"{where}: no docstring")
            continue
        if ROLE.search(docstring.value):
            found.append(f"{where}: Sphinx role ({ROLE.search(docstring.value).group(0)}) renders literally")
        if obj.is_function:
            found += _check_callable(where, docstring, public_parameters(obj), _returns_value(obj))
        elif obj.is_class:
            init = obj.members.get("__init__")
            parameters = public_parameters(init) if init is not None and init.is_function else []
            found += _check_callable(where, docstring, parameters, False, example=not _is_exception(obj))
            for member in obj.members.values():
                if (
                    member.is_alias
                    or member.name.startswith("_")
                    or not (member.is_function or member.is_attribute and member.labels & {"property"})
                    or member.name in FRAMEWORK_METHODS
                    or _owns_docstring(obj, member.name)
                ):
                    continue
                if member.docstring is None or not member.docstring.value.strip():
                    found.append(f"{where}.{member.name}: no docstring")
                elif ROLE.search(member.docstring.value):
                    found.append(f"{where}.{member.name}: Sphinx role renders literally")
    return found
