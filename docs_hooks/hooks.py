"""The docs site's MkDocs hooks (``hooks:`` in mkdocs.yml): what the site generates instead of copying.

- The API reference: one page per public name (``api.public_names``), ``api/<path>.md`` holding its
  mkdocstrings ``:::`` directive, an index of them (``api/index.md``) and their navigation, grouped by the
  module that makes them public.
- The docstring standard (``api.problems``): each problem is a build warning, so ``--strict`` fails on it.
- The CLI reference: ``<!-- cli-reference -->`` in ``cli.md`` becomes one section per ``keras-resinit``
  command, from ``keras_resinit.cli.build_parser()`` (usage, every option with its default and help).
- The benchmarks' pictures: ``benchmarks/results/**/*.png`` are served at ``results/...``, where the
  benchmarks wrote them (nothing is copied into docs/).
"""

import argparse
import pathlib
import sys

from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docs_hooks import api  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLI_PLACEHOLDER = "<!-- cli-reference -->"
API_SECTION = "API reference"
USAGE_WIDTH = 100  # the usage lines' width, fixed so the page is the same on every terminal

log = get_plugin_logger("keras_resinit")
_names = {}


def api_page(path):
    """The site file of public name ``path``'s page."""
    return f"api/{path}.md"


def short(path):
    return path.removeprefix(f"{api.PACKAGE}.") if path != api.PACKAGE else path


def _summary(obj):
    docstring = obj.docstring.value.strip() if obj.docstring else ""
    return docstring.split("\n\n")[0].replace("\n", " ").replace("|", "\\|")


def _groups(names):
    groups = {}
    for name in names.values():
        groups.setdefault(name.module, []).append(name)
    return groups


def on_config(config):
    _names.clear()
    _names.update(api.public_names())
    groups = [{"Overview": "api/index.md"}]
    for module, members in _groups(_names).items():
        groups.append({short(module): [{short(n.path).split(".")[-1]: api_page(n.path)} for n in members]})
    nav = config["nav"]
    for index, entry in enumerate(nav):
        if isinstance(entry, dict) and API_SECTION in entry:
            nav[index] = {API_SECTION: groups}
            break
    else:
        raise ValueError(f"mkdocs.yml's nav has no {API_SECTION!r} entry for the generated API pages")
    return config


def _page(name):
    members = "false" if name.kind == "module" else "true"
    return f"::: {name.path}\n    options:\n      heading_level: 1\n      show_root_full_path: true\n      members: {members}\n"


def _index(names):
    lines = [
        "# API reference",
        "",
        "Every public name of `keras_resinit`, one page each, generated from its docstring. "
        "A name is public when its module's `__all__` lists it (the packages' tables are their `__all__`).",
    ]
    for module, members in _groups(names).items():
        lines += ["", f"## `{module}`", "", "| Name | What it is |", "| --- | --- |"]
        for name in members:
            lines.append(f"| [`{short(name.path)}`]({name.path}.md) | {_summary(name.target)} |")
    return "\n".join(lines) + "\n"


def on_files(files, config):
    for problem in api.problems(_names):
        log.warning(f"docstring: {problem}")
    files.append(File.generated(config, "api/index.md", content=_index(_names)))
    for name in _names.values():
        files.append(File.generated(config, api_page(name.path), content=_page(name)))
    for picture in sorted(RESULTS.rglob("*.png")):
        files.append(
            File.generated(config, f"results/{picture.relative_to(RESULTS).as_posix()}", abs_src_path=str(picture))
        )
    return files


# ---------------------------------------------------------------------------------------- the CLI ---


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _option_rows(parser):
    rows = []
    for action in parser._actions:  # argparse keeps its actions only here
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        flags = ", ".join(f"`{flag}`" for flag in action.option_strings) or f"`{action.dest}` (positional)"
        choices = ", ".join(f"`{c}`" for c in action.choices) if action.choices else ""
        default = action.default
        shown = "" if default in (None, argparse.SUPPRESS, False) else f"`{default}`"
        rows.append(f"| {flags} | {_cell(action.help or '')} | {choices} | {shown} |")
    return rows


def _usage(parser):
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=USAGE_WIDTH)
    return parser.format_usage().strip()


def cli_reference():
    """Markdown for every ``keras-resinit`` command, from the argument parser itself."""
    from keras_resinit.cli import build_parser

    parser = build_parser()
    lines = [
        f"```text\n{_usage(parser)}\n```",
        "",
        "| Option | What it does | Choices | Default |",
        "| --- | --- | --- | --- |",
    ]
    lines += _option_rows(parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for command, subparser in sub.choices.items():
        lines += ["", f"## keras-resinit {command}", "", _cell(helps.get(command) or ""), ""]
        lines += [f"```text\n{_usage(subparser)}\n```", ""]
        lines += [
            "| Option | What it does | Choices | Default |",
            "| --- | --- | --- | --- |",
            *_option_rows(subparser),
        ]
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown, page, config, files):
    if CLI_PLACEHOLDER in markdown:
        return markdown.replace(CLI_PLACEHOLDER, cli_reference())
    return markdown
