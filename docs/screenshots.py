"""Look at the built site in headless Chromium: screenshots and a few rendering checks.

Usage (after ``mkdocs build``; Chromium from the system packages, e.g. ``apt-get install
chromium``)::

    python docs/screenshots.py [--site site] [--out /tmp/gantk-shots] [PAGE ...]

For each page (paths relative to the site, default: a set that covers every kind of
content) it writes a PNG screenshot and checks the DOM after the scripts ran: math rendered
by KaTeX with no raw ``\\(`` left, code blocks highlighted, every ``<img>`` pointing at a file
that exists. It prints one line per page and exits 1 if a check fails, 2 if Chromium is not
found. The pages are opened from disk (``file://``), so no server is needed.
"""

from __future__ import annotations

import argparse
import html.parser
import pathlib
import shutil
import subprocess
import sys
import urllib.parse

PAGES = (
    "index.html",
    "getting-started/index.html",
    "concepts/kernels/index.html",
    "concepts/solvers/index.html",
    "concepts/game-dynamics/index.html",
    "from-neural-tangents/index.html",
    "performance/index.html",
    "gallery/index.html",
    "examples/relu_vs_biasfree/index.html",
    "api/gantk.stax/index.html",
    "api/gantk.metrics/index.html",
)
MATH_PAGES = ("concepts/", "index.html", "examples/", "api/gantk.metrics")
CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """Path of a Chromium-like browser, or None."""
    for name in CHROMIUM:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--virtual-time-budget=5000", "--window-size=1280,1800"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


class _Images(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.src: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.src += [v for k, v in attrs if k == "src" and v]


def check(page: str, dom: str, site: pathlib.Path) -> list[str]:
    """Problems seen in one page's rendered DOM."""
    problems = []
    if page.startswith(MATH_PAGES):
        if 'class="katex"' not in dom:
            problems.append("no KaTeX output")
        if 'class="katex-error"' in dom:
            problems.append("KaTeX error")
    if "arithmatex" in dom and "\\(" in dom.split('class="arithmatex"', 1)[-1][:200]:
        problems.append("raw \\( left in an arithmatex element")
    if "<pre" in dom and 'class="highlight' not in dom and "highlight-ipynb" not in dom:
        problems.append("code blocks without highlighting")
    parser = _Images()
    parser.feed(dom)
    base = (site / page).parent
    for src in parser.src:
        if src.startswith(("data:", "http:", "https:")):
            continue
        path = urllib.parse.unquote(urllib.parse.urlparse(src).path)
        if path.startswith("/"):
            target = pathlib.Path(path)
        else:
            target = (base / path).resolve()
        if not target.is_file():
            problems.append(f"missing image {src}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Screenshot and check the pages; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", default=list(PAGES))
    parser.add_argument("--site", default="site", help="built site folder (mkdocs build)")
    parser.add_argument("--out", default="/tmp/gantk-shots", help="screenshot folder")
    args = parser.parse_args(argv)
    browser = find_chromium()
    if browser is None:
        print("screenshots.py: no Chromium found (apt-get install chromium)")
        return 2
    site = pathlib.Path(args.site).resolve()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for page in args.pages:
        path = site / page
        if not path.is_file():
            print(f"FAIL {page}: not in {site}")
            failed += 1
            continue
        url = path.as_uri()
        shot = out / (page.replace("/index.html", "").replace("/", "_").replace(".html", "")
                      + ".png")
        _run(browser, f"--screenshot={shot}", url)
        dom = _run(browser, "--dump-dom", url).stdout
        problems = check(page, dom, site)
        failed += bool(problems)
        status = "FAIL" if problems else "ok  "
        print(f"{status} {page} -> {shot}" + (f": {'; '.join(problems)}" if problems else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
