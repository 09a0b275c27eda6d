"""Open the built book in headless Chromium and check what a reader would see.

    python docs/check_book.py [_docs] [--nbs nbs] [--screenshot DIR]

For the index and every notebook page (and the API pages): no JavaScript error (an uncaught exception, a
`console.error`, a resource that fails to load), at least one rendered image (`naturalWidth > 0`) on every page
whose notebook stores a plot, no broken image, no Python traceback in the page's text, and every link inside the
book to a file that exists and, for `page.html#id`, to an element with that id. Chromium is driven through the
DevTools protocol over a pipe (`--remote-debugging-pipe`), so no driver or browser download is needed: only
Debian's `chromium`. Exits 0 when every page passes, 1 when one fails, 2 when it cannot run (no Chromium, no book).
"""
from __future__ import annotations

import argparse, fcntl, json, os, re, select, shutil, subprocess, sys, tempfile, time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

PLOT_MIMES = ("image/png", "image/svg+xml", "image/jpeg", "image/gif")


def find_chromium() -> str | None:
    "The system Chromium, or None."
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome", "chrome"):
        if name and (p := shutil.which(name)): return p
    return None


class Chromium:
    "A headless Chromium spoken to through the DevTools protocol on fds 3/4 (`--remote-debugging-pipe`)."

    def __init__(self, exe: str, timeout: float = 30):
        self.timeout, self.next_id, self.events = timeout, 0, []
        self.profile = tempfile.mkdtemp(prefix="book-chromium-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # park the child's ends above 10 so that dup2 onto 3 and 4 cannot clobber one another
        hi_r, hi_w = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r); os.close(from_chrome_w)

        def fds():
            os.dup2(hi_r, 3); os.dup2(hi_w, 4)
        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--allow-file-access-from-files",
                "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "--window-size=1280,900", "about:blank"]
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(hi_r); os.close(hi_w)
        self.buf = b""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"): self.send(f"{domain}.enable", session=True)

    def _read(self, deadline: float) -> dict | None:
        while b"\0" not in self.buf:
            left = deadline - time.time()
            if left <= 0: return None
            if not select.select([self.from_chrome], [], [], left)[0]: return None
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk: raise RuntimeError("Chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, session: bool = False, **params):
        "Call a DevTools method and return its result; events met meanwhile are kept in `self.events`."
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session: msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + self.timeout
        while (m := self._read(deadline)) is not None:
            if m.get("id") == self.next_id:
                if "error" in m: raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m: self.events.append(m)
        raise TimeoutError(f"Chromium did not answer {method} within {self.timeout} s")

    def wait_event(self, method: str, timeout: float) -> bool:
        deadline = time.time() + timeout
        if any(e["method"] == method for e in self.events): return True
        while (m := self._read(deadline)) is not None:
            if "method" in m:
                self.events.append(m)
                if m["method"] == method: return True
        return False

    def eval(self, expr: str):
        r = self.send("Runtime.evaluate", session=True, expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r: raise RuntimeError(f"evaluate failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def close(self):
        try: self.proc.terminate(); self.proc.wait(10)
        except Exception: self.proc.kill()
        for fd in (self.to_chrome, self.from_chrome):
            try: os.close(fd)
            except OSError: pass
        shutil.rmtree(self.profile, ignore_errors=True)


# What the page shows once loaded, images decoded and MathJax (if any) done.
PAGE_STATE = """(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { try { await MathJax.startup.promise; } catch (e) {} }
  const main = document.querySelector('main, article, [role=main]') || document.body;
  const shown = el => el.getClientRects().length > 0;
  return {
    title: document.title,
    text: main.innerText,
    images: imgs.filter(i => main.contains(i) && shown(i)).map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight})),
    traceback_outputs: document.querySelectorAll('.output.traceback, .output_error, .cell_output .traceback').length,
    math_errors: document.querySelectorAll('mjx-merror, .MathJax_Error').length,
    sidebar: Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal')).map(a => a.getAttribute('href')),
    sidebar_parts: Array.from(document.querySelectorAll('nav.bd-docs-nav p.caption')).map(p => p.innerText.trim()),
  };
})()"""


def page_problems(b: Chromium, url: str, wants_image: bool) -> tuple[list[str], dict]:
    "Load `url` and list what is wrong with it."
    b.events.clear()
    b.send("Page.navigate", session=True, url=url)
    if not b.wait_event("Page.loadEventFired", b.timeout): return [f"did not load within {b.timeout} s"], {}
    state = b.eval(PAGE_STATE)
    time.sleep(0.2)                     # let late errors of the page's scripts arrive
    try: b.send("Runtime.evaluate", session=True, expression="0")
    except Exception: pass
    problems = []
    for e in b.events:
        p = e.get("params", {})
        if e["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            problems.append(f"JavaScript error: {d.get('exception', {}).get('description') or d.get('text')}")
        elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            problems.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            en = p["entry"]; problems.append(f"{en.get('source')} error: {en.get('text')} {en.get('url', '')}".strip())
    broken = [i["src"] for i in state["images"] if not i["w"]]
    if broken: problems.append(f"broken images: {broken}")
    if wants_image and not any(i["w"] for i in state["images"]):
        problems.append("its notebook stores a plot, but the page shows no rendered image")
    if state["traceback_outputs"] or re.search(r"Traceback \(most recent call last\)", state["text"]):
        problems.append("the page shows a Python traceback")
    if state["math_errors"]: problems.append(f"{state['math_errors']} formulas that MathJax could not typeset")
    return problems, state


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"): self.ids.add(a["id"])
        if tag == "a" and a.get("name"): self.ids.add(a["name"])
        if tag == "a" and a.get("href"): self.hrefs.append(a["href"])


def broken_links(docs: Path, pages: list[Path]) -> dict[str, list[str]]:
    "For each page, the links inside the book that lead to a missing file or a missing id."
    parsed = {}

    def parse(p: Path) -> _Links:
        if p not in parsed:
            parsed[p] = _Links(); parsed[p].feed(p.read_text(encoding="utf-8", errors="replace"))
        return parsed[p]
    out = {}
    for page in pages:
        bad = []
        for href in parse(page).hrefs:
            u = urlsplit(href)
            if u.scheme or u.netloc or href.startswith(("mailto:", "javascript:")): continue
            target = (page.parent / unquote(u.path)).resolve() if u.path else page
            if target.is_dir(): target = target / "index.html"
            if not target.exists(): bad.append(href); continue
            if u.fragment and target.suffix == ".html" and unquote(u.fragment) not in parse(target).ids: bad.append(href)
        if bad: out[page.relative_to(docs).as_posix()] = sorted(set(bad))
    return out


def notebook_has_plot(nb: Path) -> bool:
    "Whether a shown cell of the notebook stores an image output."
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    for c in cells:
        if c["cell_type"] != "code" or re.search(r"^\s*#\s*\|\s*(hide|include:\s*false|output:\s*false)", "".join(c["source"]), re.M):
            continue
        if any(m in o.get("data", {}) for o in c.get("outputs", []) for m in PLOT_MIMES): return True
    return False


def check(docs: Path, nbs: Path, screenshots: Path | None = None, chromium: str | None = None,
          log=print) -> dict:
    "Check every page of the book in `docs` built from the notebooks in `nbs`; returns the findings."
    exe = chromium or find_chromium()
    if exe is None: raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    stems = sorted(p.stem for p in nbs.glob("*.ipynb") if not p.stem.startswith(("_", ".")))
    api = sorted((docs / "api").glob("*.html")) if (docs / "api").exists() else []
    pages = [(s, docs / f"{s}.html", notebook_has_plot(nbs / f"{s}.ipynb")) for s in stems] + \
            [(f"api/{p.stem}", p, False) for p in api]
    res = {"pages": 0, "images": 0, "plot_pages": 0, "failures": {}}
    missing = [s for s, p, _ in pages if not p.exists()]
    for s in missing: res["failures"][s] = ["no page was built for this notebook"]
    links = broken_links(docs, [p for _, p, _ in pages if p.exists()])
    b = Chromium(exe)
    try:
        for stem, path, wants in pages:
            if not path.exists(): continue
            problems, state = page_problems(b, path.resolve().as_uri(), wants)
            if bad := links.get(path.relative_to(docs).as_posix()):
                problems.append(f"links that do not resolve: {bad}")
            n_img = sum(1 for i in state.get("images", []) if i["w"])
            res["pages"] += 1; res["images"] += n_img; res["plot_pages"] += wants
            if stem == "index": res["sidebar"], res["sidebar_parts"] = state.get("sidebar", []), state.get("sidebar_parts", [])
            if problems: res["failures"][stem] = problems
            if screenshots is not None and (wants or stem == "index"):
                screenshots.mkdir(parents=True, exist_ok=True)
                import base64
                shot = b.send("Page.captureScreenshot", session=True, format="png")["data"]
                (screenshots / f"{stem.replace('/', '_')}.png").write_bytes(base64.b64decode(shot))
            log(f"{'FAIL' if problems else 'ok  '} {stem:32s} images={n_img}{' (has a plot)' if wants else ''}"
                + "".join(f"\n       {p}" for p in problems))
    finally:
        b.close()
    return res


def main(argv=None) -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("docs", nargs="?", default=str(root / "_docs"))
    ap.add_argument("--nbs", default=str(root / "nbs"))
    ap.add_argument("--screenshot", default=None, help="folder for PNG screenshots of the index and pages with plots")
    a = ap.parse_args(argv)
    docs, nbs = Path(a.docs), Path(a.nbs)
    if not (docs / "index.html").exists():
        print(f"error: no book in {docs} (run `make docs` first)", file=sys.stderr); return 2
    if find_chromium() is None:
        print("error: no Chromium found (apt-get install chromium)", file=sys.stderr); return 2
    r = check(docs, nbs, Path(a.screenshot) if a.screenshot else None)
    print(f"{r['pages']} pages opened in Chromium, {r['images']} rendered images, {r['plot_pages']} pages whose "
          f"notebook has a plot; {len(r['failures'])} failing")
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
