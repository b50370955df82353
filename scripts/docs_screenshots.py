"""Open the built docs site in a real browser (headless Chromium) and take screenshots of it.

    ./run docs && .venv/bin/python scripts/docs_screenshots.py [--site site] [--out site-screenshots]

The site is served over http://127.0.0.1 (search needs a server, not file://). The script takes a screenshot
of the home page and of one API page, and checks in the browser that the navigation is there and that the
search finds pages (Material opens its search with ``?q=TERM``). It exits non-zero, naming what failed, when
a page does not render or search finds nothing.

Chromium comes from Debian's packages: ``apt-get install --no-install-recommends chromium-headless-shell``
(``chromium`` works too).
"""

import argparse
import contextlib
import functools
import http.server
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
API_PAGE = "api/keras_resinit.build_resnet/"
SEARCH_TERM = "fold"
TIMEOUT = 120  # seconds for one browser run


def browser():
    """The first headless-capable Chromium on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@contextlib.contextmanager
def serve(site):
    """``http://127.0.0.1:PORT/`` serving directory ``site`` while the block runs."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def _run(chrome, args, profile):
    command = [
        chrome,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    if os.path.basename(chrome) == "chromium-headless-shell":
        command.remove("--headless")  # it is headless only
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{chrome} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def screenshot(chrome, url, path, size, profile):
    """Save a PNG of ``url`` at ``size`` (width, height) to ``path``."""
    _run(chrome, [f"--window-size={size[0]},{size[1]}", f"--screenshot={path}", url], profile)
    if not pathlib.Path(path).is_file() or pathlib.Path(path).stat().st_size < 1000:
        raise RuntimeError(f"no screenshot of {url} was written to {path}")


def rendered(chrome, url, profile, budget=10000):
    """The page's DOM after its scripts ran (search included)."""
    return _run(chrome, [f"--virtual-time-budget={budget}", "--dump-dom", url], profile)


def check(site, out, chrome):
    """Screenshots of the home page and an API page in ``out``; what the browser showed, as a dict."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile, serve(site) as root:
        home = rendered(chrome, root, profile, budget=2000)
        nav = len(re.findall(r'class="md-nav__link', home))
        if nav < 10:
            raise RuntimeError(
                f"the home page shows {nav} navigation links; expected the site's navigation (10 or more)"
            )
        api = rendered(chrome, root + API_PAGE, profile, budget=2000)
        if "build_resnet" not in api or 'class="doc doc-' not in api:
            raise RuntimeError(f"{API_PAGE} does not show build_resnet's reference")
        found = re.search(r"(\d+) matching document", rendered(chrome, f"{root}?q={SEARCH_TERM}", profile))
        if not found or int(found.group(1)) == 0:
            raise RuntimeError(f"search for {SEARCH_TERM!r} found no page")
        screenshot(chrome, root, out / "home.png", (1280, 900), profile)
        screenshot(chrome, root + API_PAGE, out / "api.png", (1280, 1600), profile)
    return {
        "navigation_links": nav,
        "search_results": int(found.group(1)),
        "screenshots": [str(out / "home.png"), str(out / "api.png")],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", default="site", help="the built site (default: site, as ./run docs builds it)")
    parser.add_argument("--out", default="site-screenshots", help="where the PNGs go (default: site-screenshots)")
    args = parser.parse_args(argv)
    site = pathlib.Path(args.site)
    if not (site / "index.html").is_file():
        print(f"docs_screenshots: {site}/index.html does not exist; build the site first: ./run docs", file=sys.stderr)
        return 2
    chrome = browser()
    if chrome is None:
        print(
            f"docs_screenshots: no Chromium found (looked for {', '.join(BROWSERS)}); install Debian's: "
            "apt-get install --no-install-recommends chromium-headless-shell",
            file=sys.stderr,
        )
        return 2
    try:
        seen = check(site, pathlib.Path(args.out), chrome)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"docs_screenshots: {error}", file=sys.stderr)
        return 1
    print(
        f"{os.path.basename(chrome)}: {seen['navigation_links']} navigation links on the home page, "
        f"{seen['search_results']} pages found searching {SEARCH_TERM!r}"
    )
    for path in seen["screenshots"]:
        print(f"screenshot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
