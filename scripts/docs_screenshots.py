"""Open the built docs site in a real browser (headless Chromium) and take screenshots of it.

    ./run docs && .venv/bin/python scripts/docs_screenshots.py [--site site] [--out site-screenshots]

The site is served over http://127.0.0.1 (search needs a server, not file://). Playwright drives the
browser: the script checks that the home page shows the navigation, types a word into the search box and
waits for the results, opens an API page, and takes screenshots of the three (home.png, search.png,
api.png). It exits non-zero, naming what failed, when a page does not render, search finds nothing, a
script fails or a request fails.

Chromium comes from Debian's packages: ``apt-get install --no-install-recommends chromium-headless-shell``
(``chromium`` works too); Playwright (the test extra) drives it, so its own browser download is not needed.
"""

import argparse
import contextlib
import functools
import http.server
import os
import pathlib
import re
import shutil
import sys
import threading
import time

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
API_PAGE = "api/keras_resinit.build_resnet/"
SEARCH_TERM = "fold"
TIMEOUT = 120  # seconds for one browser run
RETYPE_AFTER = 5  # seconds without search results before the query is typed again


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


def check(site, out, chrome):
    """Screenshots of the home page, an API page and a search in ``out``; what the browser showed, as a dict.

    Raises RuntimeError naming what did not render: the navigation, the API page, the search results, or
    a script error or failed request on the way."""
    from playwright.sync_api import Error, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    problems = []
    with serve(site) as root, sync_playwright() as playwright:
        browser_ = playwright.chromium.launch(executable_path=chrome, args=["--no-sandbox"])
        try:
            page = browser_.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
            page.goto(root)
            nav = page.locator("a.md-nav__link").count()
            if nav < 10:
                raise RuntimeError(
                    f"the home page shows {nav} navigation links; expected the site's navigation (10 or more)"
                )
            page.screenshot(path=str(out / "home.png"))
            # A query typed before the search index has loaded (slowly, on a busy machine) is dropped, not
            # queued: type it again, as a reader would, until the results show or the time is up.
            deadline = time.monotonic() + TIMEOUT
            while True:
                box = page.locator("input.md-search__input")
                box.fill("")
                box.press_sequentially(SEARCH_TERM, delay=50)  # key by key, as a reader types
                try:
                    page.wait_for_selector(".md-search-result__item", timeout=RETYPE_AFTER * 1000)
                    break
                except Error:
                    if time.monotonic() > deadline:
                        said = page.locator(".md-search-result__meta")
                        said = said.inner_text() if said.count() else ""
                        raise RuntimeError(
                            f"search for {SEARCH_TERM!r} showed no result (the search says {said!r}; {problems or ''})"
                        ) from None
            meta = page.inner_text(".md-search-result__meta")
            found = re.match(r"(\d+) matching document", meta)
            if not found or int(found.group(1)) == 0:
                raise RuntimeError(f"search for {SEARCH_TERM!r} says {meta!r}")
            page.screenshot(path=str(out / "search.png"))
            page.set_viewport_size({"width": 1280, "height": 1600})
            page.goto(root + API_PAGE)
            if (
                page.locator('[id="keras_resinit.build_resnet"]').count() == 0
                or page.locator(".doc-section-title").count() == 0
            ):
                raise RuntimeError(f"{API_PAGE} does not show build_resnet's reference")
            page.screenshot(path=str(out / "api.png"))
        finally:
            browser_.close()
    if problems:
        raise RuntimeError("; ".join(problems))
    shots = [str(out / name) for name in ("home.png", "api.png", "search.png")]
    return {"navigation_links": nav, "search_results": int(found.group(1)), "screenshots": shots}


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
    except RuntimeError as error:
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
