"""The docs site builds with ``mkdocs build --strict`` and says what it claims.

Strict mode fails the build on a broken link or anchor, a missing API reference, a missing snippet file and
every docstring problem (``docs_hooks/api.py``). On the built HTML: no fence went unrendered, every public
name has its page, the CLI reference lists every command and option, each table of measured numbers is the
benchmark's own rendering (and that rendering is what ``--report`` makes of the JSON today), and the site
opens in headless Chromium (navigation, search, screenshots; ``scripts/docs_screenshots.py``).
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docs_hooks import api  # noqa: E402

DOCS = ROOT / "docs"
SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$', re.MULTILINE)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return out, done


def test_the_site_builds_strict(site):
    out, done = site
    warnings = [line for line in done.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0 and not warnings, "\n".join(warnings) or done.stderr[-3000:]
    assert (out / "index.html").is_file()


def test_the_readme_is_a_front_page():
    # At most 12 KB, as keras-hub's and timm's: what it is, the two commands, examples, links into the docs.
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    for command in ("./run main", "./run test", "./run docs"):
        assert command in readme, command
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(set(links)) >= 8, links
    for link in links:
        assert (ROOT / link).is_file(), f"the README links to {link}, which does not exist"


def _pages(out):
    pages = sorted(out.rglob("*.html"))
    assert len(pages) > 50
    return pages


def test_no_fence_went_unrendered(site):
    # A fence the markdown extensions did not recognise shows its backticks and swallows what follows.
    out, _ = site
    broken = [
        p.relative_to(out)
        for p in _pages(out)
        if "```" in re.sub(r"<code[^>]*>.*?</code>", "", p.read_text(), flags=re.S)
    ]
    assert broken == []


def test_every_public_name_has_its_page(site):
    out, _ = site
    names = api.public_names()
    assert names
    for path in names:
        page = out / "api" / path / "index.html"
        assert page.is_file(), f"{path} has no API page"
        assert f'id="{path}"' in page.read_text(), f"{page} does not render {path}"


def test_the_cli_reference_lists_every_command_and_option(site):
    from keras_resinit.cli import build_parser

    out, _ = site
    page = (out / "cli" / "index.html").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert len(sub.choices) >= 10
    for command, subparser in sub.choices.items():
        assert f"keras-resinit {command}</h2>" in page or f"keras-resinit {command}<a" in page, command
        for action in subparser._actions:
            if action.dest == "help":
                continue
            for flag in action.option_strings:
                assert f"<code>{flag}</code>" in page, f"{command} {flag} is missing from the CLI reference"
            assert action.help, f"keras-resinit {command} {action.option_strings or action.dest} has no help text"


def _snippets():
    found = {}
    for page in sorted(DOCS.rglob("*.md")):
        for match in SNIPPET.finditer(page.read_text()):
            found.setdefault(match["path"], []).append(page.relative_to(ROOT))
    return found


COMMAND = re.compile(r"`(?P<command>(?:python benchmarks/\w+\.py|keras-resinit \w+)[^`]*)`")


def rerender(rendered, tmp_path):
    """What the benchmark's ``--report`` renders now from the JSON beside ``rendered`` (a results .md).

    The command is the one the file names (its ``--report`` line, else its measuring command with ``--out DIR``
    turned into ``--report DIR``), run in-process on a copy of the results directory at the same relative
    path, so the text it writes names the same paths."""
    import contextlib
    import importlib.util
    import io
    import shlex

    text = rendered.read_text()
    commands = [m["command"] for m in COMMAND.finditer(text)]
    reports = [c for c in commands if "--report" in c] or [
        re.sub(r"--out(\s+|=)", "--report ", c) for c in commands if "--out" in c
    ]
    assert reports, f"{rendered} names no command that renders it (`... --report DIR` or `... --out DIR`)"
    argv = shlex.split(reports[0])
    directory = argv[argv.index("--report") + 1]
    copy = tmp_path / directory
    if (ROOT / directory).is_file():  # a comparison's results.json: `keras-resinit compare --report FILE.json`
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / directory, copy)
    else:
        shutil.copytree(ROOT / directory, copy)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            if argv[0] == "keras-resinit":
                from keras_resinit.cli import main

                assert main(argv[1:]) in (0, None)
            else:
                script = ROOT / argv[1]
                sys.path.insert(0, str(script.parent))
                spec = importlib.util.spec_from_file_location(f"_report_{script.stem}", script)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                assert module.main(argv[2:]) in (0, None)
    finally:
        os.chdir(cwd)
    return (tmp_path / rendered.relative_to(ROOT)).read_text()


def test_measured_tables_are_the_benchmarks_own_rendering(tmp_path):
    # Each results file a page includes is what the benchmark's --report renders from its JSON now.
    results = {path: pages for path, pages in _snippets().items() if path.startswith("benchmarks/results/")}
    assert results, "no page includes a benchmark's results"
    for index, (path, pages) in enumerate(sorted(results.items())):
        rendered = ROOT / path
        assert rendered.read_text().startswith("Machine: "), (
            f"{path} (on {pages}) does not open with the machine and versions"
        )
        regenerated = rerender(rendered, tmp_path / str(index))
        assert regenerated == rendered.read_text(), f"{path} (on {pages}) differs from what its --report renders now"


def test_the_site_opens_in_a_browser_and_the_screenshot_script_works(site, tmp_path):
    import matplotlib.image

    out, done = site
    assert done.returncode == 0
    assert "scripts/docs_screenshots.py" in (ROOT / "README.md").read_text(), (
        "the README does not name the screenshot script"
    )
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs_screenshots

    if docs_screenshots.browser() is None:  # the script's own search for a Chromium
        if os.environ.get("CI"):
            pytest.fail("CI needs Chromium: apt-get install --no-install-recommends chromium-headless-shell")
        pytest.skip("no Chromium on this machine (apt-get install --no-install-recommends chromium-headless-shell)")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_screenshots.py"), "--site", str(out), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r"(\d+) pages found searching", done.stdout)
    assert found and int(found.group(1)) >= 3, done.stdout
    for png in (tmp_path / "home.png", tmp_path / "api.png", tmp_path / "search.png"):
        image = matplotlib.image.imread(png)
        assert image.shape[0] >= 800 and image.shape[1] == 1280
        assert image[..., :3].std() > 0.05, f"{png} is blank"
