"""Check the built documentation as a reader would (``make docs-check``).

Two passes over ``docs/_build/html`` (or the folder given):

1. **Links, from the HTML files.** Every relative ``href`` and ``src`` of every page must name a
   file of the site, and every ``#anchor`` must be an ``id`` (or ``<a name>``) in its target page.
   No image, script or stylesheet may come from the network: the site must work offline.
2. **Rendering, in headless Chromium.** Each page is opened over ``file://``; every ``<img>`` must
   have loaded (``naturalWidth > 0``), pages that show figures must show at least one, the page must
   raise no JavaScript error, and the browser must request nothing outside the site. Screenshots of
   a few pages go to ``<site>/../check/`` for a person to look at.

Chromium is Debian's ``chromium`` package (``make docs-check`` installs it with apt-get when it is
missing and the user is root). Without it the second pass is skipped with a message saying so, and
the link pass still runs; ``--require-browser`` turns the skip into a failure.

The browser is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-separated JSON on file descriptors 3 and 4), so no websocket or browser-automation package is
needed.

    python docs/check_site.py [SITE] [--require-browser] [--screenshots N]

Exit status 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent
DEFAULT_SITE = DOCS / "_build" / "html"
# Pages whose figures are part of their content: each must show at least one loaded image.
PAGES_WITH_FIGURES = ("index.html", "user_guide/model.html", "reproducing.html", "auto_examples/index.html")
# Attributes that load a resource into the page (as opposed to links a reader follows).
_RESOURCE_ATTRS = {("img", "src"), ("script", "src"), ("link", "href"), ("source", "src"), ("iframe", "src")}
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_PAGE_TIMEOUT_S = 30.0


# ------------------------------------------------------------------------------------------------
# Pass 1: links


@dataclass
class Page:
    """What the link pass needs from one HTML file."""

    ids: set[str] = field(default_factory=set)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, attribute, value)
    images: int = 0


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        if "id" in values:
            self.page.ids.add(values["id"])
        if tag == "a" and "name" in values:
            self.page.ids.add(values["name"])
        if tag == "img":
            self.page.images += 1
        for attr in ("href", "src"):
            if attr in values:
                rel = values.get("rel", "")
                # <link rel="canonical"> and friends name pages, they load nothing.
                if tag == "link" and not any(r in rel.split() for r in ("stylesheet", "icon", "preload")):
                    continue
                self.page.links.append((tag, attr, values[attr]))


def parse_site(site: Path) -> dict[Path, Page]:
    """Every HTML file of ``site`` (relative path -> its ids and links)."""
    pages = {}
    for path in sorted(site.rglob("*.html")):
        if path.relative_to(site).parts[0] in ("_static", "_sources", "_images", "_downloads"):
            continue  # theme templates and copied files, not pages
        collector = _Collector()
        collector.feed(path.read_text(encoding="utf-8", errors="replace"))
        pages[path.relative_to(site)] = collector.page
    return pages


def check_links(site: Path, pages: dict[Path, Page]) -> list[str]:
    """Broken relative links and anchors, and resources loaded from the network."""
    problems = []
    for rel, page in pages.items():
        for tag, attr, value in page.links:
            value = value.strip()
            if not value or value.startswith(("javascript:", "data:")):
                continue
            if _EXTERNAL.match(value) or value.startswith("//"):
                if (tag, attr) in _RESOURCE_ATTRS:
                    problems.append(f"{rel}: <{tag} {attr}={value!r}> loads a resource from the network")
                continue
            parts = urlsplit(value)
            target_rel = rel if not parts.path else Path(os.path.normpath(rel.parent / unquote(parts.path)))
            target = site / target_rel
            if target.is_dir():
                target, target_rel = target / "index.html", target_rel / "index.html"
            if not target.is_file():
                problems.append(f"{rel}: <{tag} {attr}={value!r}>: {target_rel} does not exist")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                ids = pages[target_rel].ids if target_rel in pages else set()
                if fragment not in ids:
                    problems.append(f"{rel}: <{tag} {attr}={value!r}>: no id {fragment!r} in {target_rel}")
    return problems


# ------------------------------------------------------------------------------------------------
# Pass 2: headless Chromium over the DevTools protocol


def find_chromium() -> str | None:
    """The Chromium executable on PATH, if any."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """A headless Chromium driven over ``--remote-debugging-pipe`` (one tab, flattened session)."""

    def __init__(self, executable: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="flowmix-docs-check-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = [
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",  # root in CI: Chromium refuses to start sandboxed as root
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--hide-scrollbars",
            f"--user-data-dir={self._profile}",
            "--window-size=1280,900",
        ]
        # The protocol reads fd 3 and writes fd 4 of the browser: a shell puts the pipes there.
        command = " ".join([f"exec '{executable}'", *flags, f"3<&{to_browser_r}", f"4>&{from_browser_w}"])
        self._process = subprocess.Popen(
            ["sh", "-c", command],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)

    def _send(self, message: dict) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, *, session: bool = False) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + _PAGE_TIMEOUT_S
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> None:
        """Wait for the next event ``method`` of the tab (one already received counts)."""
        deadline = time.monotonic() + _PAGE_TIMEOUT_S
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    del self.events[i]
                    return
            self.events.append(self._receive(deadline))

    def close(self) -> None:
        try:
            self._send({"id": 0, "method": "Browser.close"})
            self._process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self._process.kill()
            self._process.wait()
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)
            shutil.rmtree(self._profile, ignore_errors=True)


# Run in the page once it has loaded: make lazy images load, wait for every image to settle, and
# report each one.
_IMAGES_JS = """
(async () => {
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return JSON.stringify(images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth})));
})()
"""


def check_in_browser(
    site: Path, pages: list[Path], expect_figures: set[Path], screenshots: set[Path], shots_dir: Path
) -> tuple[list[str], dict[str, int]]:
    """Open every page; return the problems and counts (pages, images loaded)."""
    executable = find_chromium()
    assert executable is not None
    browser = Browser(executable)
    problems: list[str] = []
    counts = {"pages": 0, "images": 0}
    try:
        for rel in pages:
            browser.events.clear()
            url = (site / rel).resolve().as_uri()
            browser.call("Page.navigate", {"url": url}, session=True)
            browser.wait_for("Page.loadEventFired")
            result = browser.call(
                "Runtime.evaluate",
                {"expression": _IMAGES_JS, "awaitPromise": True, "returnByValue": True},
                session=True,
            )
            images = json.loads(result["result"]["value"])
            broken = [img["src"] for img in images if img["width"] == 0]
            problems += [f"{rel}: image did not load: {src}" for src in broken]
            loaded = len(images) - len(broken)
            if rel in expect_figures and loaded == 0:
                problems.append(f"{rel}: shows no figure (no <img> loaded)")
            for event in browser.events:
                method, params = event.get("method"), event.get("params", {})
                if method == "Network.requestWillBeSent":
                    requested = params["request"]["url"]
                    if not requested.startswith(("file:", "data:", "blob:", "about:")):
                        problems.append(
                            f"{rel}: the browser requested {requested} (the site must work offline)"
                        )
                elif method == "Runtime.exceptionThrown":
                    details = params["exceptionDetails"]
                    text = details.get("exception", {}).get("description") or details.get("text")
                    problems.append(f"{rel}: JavaScript error: {text}")
                elif method == "Network.loadingFailed" and not params.get("canceled"):
                    problems.append(f"{rel}: a resource failed to load: {params.get('errorText')}")
            if rel in screenshots:
                shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=True)
                name = str(rel.with_suffix(".png")).replace(os.sep, "__")
                (shots_dir / name).write_bytes(base64.b64decode(shot["data"]))
            counts["pages"] += 1
            counts["images"] += loaded
    finally:
        browser.close()
    return problems, counts


# ------------------------------------------------------------------------------------------------


def gallery_pages_with_figures(site: Path) -> set[Path]:
    """The gallery pages whose example ran in this build (they must show their figures).

    ``make docs`` runs every example; ``make docs-quick`` only those that ``docs/conf.py`` names in
    ``QUICK_EXAMPLES``, and records the mode in ``<site>/../.mode``.
    """
    mode_file = site.parent / ".mode"
    quick = mode_file.is_file() and mode_file.read_text().strip() == "quick"
    names = {p.stem for p in (DOCS / "examples").glob("plot_*.py")}
    if quick:
        conf = (DOCS / "conf.py").read_text()
        listed = re.search(r"QUICK_EXAMPLES = \(([^)]*)\)", conf)
        names = {Path(n).stem for n in re.findall(r'"([^"]+\.py)"', listed.group(1))} if listed else set()
    return {Path("auto_examples") / f"{name}.html" for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=DEFAULT_SITE)
    parser.add_argument("--require-browser", action="store_true", help="fail when Chromium is missing")
    parser.add_argument("--screenshots", type=int, default=6, help="pages to screenshot (default 6)")
    args = parser.parse_args(argv)
    site = args.site.resolve()
    if not (site / "index.html").is_file():
        print(f"{site} holds no built site (index.html): run `make docs` or `make docs-quick` first.")
        return 1

    start = time.perf_counter()
    pages = parse_site(site)
    problems = check_links(site, pages)
    n_links = sum(len(p.links) for p in pages.values())
    print(f"links: {len(pages)} HTML files, {n_links} href/src checked, {len(problems)} problems")

    expect = {Path(p) for p in PAGES_WITH_FIGURES} | gallery_pages_with_figures(site)
    missing = sorted(str(p) for p in expect if p not in pages)
    problems += [f"{p}: expected page is missing from the site" for p in missing]
    # Every page a reader reaches from the navigation; the source-code pages and all but a few API
    # pages are covered by the link pass only, to keep the browser pass short.
    api = sorted(p for p in pages if p.parts[:2] == ("api", "generated"))
    browse = [
        p
        for p in pages
        if p.parts[0] not in ("_modules", "api") and p.name not in ("genindex.html", "py-modindex.html")
    ]
    browse += [Path("api/index.html"), *api[:3], Path("genindex.html")]
    browse = [p for p in dict.fromkeys(browse) if p in pages]
    shots = {
        Path(p)
        for p in (
            "index.html",
            "user_guide/recipe.html",
            "auto_examples/index.html",
            "auto_examples/plot_compare_clusterers.html",
            "auto_examples/plot_density_sampling.html",
            "api/generated/flowmix.FlowMixture.html",
        )[: args.screenshots]
    }

    executable = find_chromium()
    if executable is None:
        message = (
            "browser pass skipped: no Chromium on PATH (install Debian's package: "
            "apt-get install chromium; `make docs-check` does so when run as root)"
        )
        print(message)
        if args.require_browser:
            problems.append(message)
    else:
        shots_dir = site.parent / "check"
        shots_dir.mkdir(exist_ok=True)
        found, counts = check_in_browser(site, browse, expect, shots, shots_dir)
        problems += found
        print(
            f"browser: {counts['pages']} pages opened in {Path(executable).name}, {counts['images']} images "
            f"loaded, {len(found)} problems; screenshots in {shots_dir}"
        )

    for problem in problems:
        print("  " + problem)
    print(f"{'FAILED' if problems else 'OK'}: {len(problems)} problems ({time.perf_counter() - start:.1f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
