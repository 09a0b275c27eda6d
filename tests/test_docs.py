"""The book of the notebooks (`make docs`): it builds from the stored outputs, and every page opens in headless
Chromium without a JavaScript error or a Python traceback, with its notebook's plots rendered.

The cheap tests (the section table, the staging of a notebook, the API entries) always run. The build and the browser
check take one to two minutes, so they run under `make test-docs` (LLAMA3_NB_BOOK_TEST=1), which installs the book
tools and Debian's chromium first; elsewhere they skip and say so.
"""
import itertools, json, os, subprocess, sys, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import book, check_book  # noqa: E402

NBS = ROOT / "nbs"
HEAVY = os.environ.get("LLAMA3_NB_BOOK_TEST") == "1"


def _tools_or_skip():
    if not HEAVY: pytest.skip("the book build and browser check run with `make test-docs` (LLAMA3_NB_BOOK_TEST=1)")
    try:
        import sphinx, myst_nb, sphinx_book_theme  # noqa: F401
    except ImportError as e:
        pytest.skip(f"book tools not installed ({e.name}): `make docs` installs the `docs` extra")
    if check_book.find_chromium() is None:
        pytest.skip("no Chromium: `apt-get install chromium` (make test-docs tries it as root) to run the browser check")


# ------------------------------------------------------------------------------------------------ always
def test_sections_follow_the_table_and_tolerate_new_notebooks():
    assert book.section("03_model") == ("The model", "§3.2")
    assert book.section("07b_sft")[0] == book.section("07a_tasks")[0] == "Post-training"
    assert book.section("09b_paged_engine") == book.section("09_paged_attention")   # a split keeps its section
    assert book.section("99_something_new") == book.DEFAULT_SECTION
    assert book.section("weird") == book.DEFAULT_SECTION


def test_notebooks_are_found_in_pipeline_order(tmp_path):
    for n in ["10_b", "02a_x", "index", "00_a", "_private"]: (tmp_path / f"{n}.ipynb").write_text("{}")
    assert [p.stem for p in book.notebooks(tmp_path)] == ["00_a", "02a_x", "10_b"]
    assert [p.stem for p in book.notebooks(NBS)] == sorted(p.stem for p in NBS.glob("*.ipynb") if p.stem != "index")


def _nb(*cells):
    return {"cells": [dict(c, id=f"c{i}", metadata={}) for i, c in enumerate(cells)], "metadata": {},
            "nbformat": 4, "nbformat_minor": 5}


def _code(src, outputs=()):
    return {"cell_type": "code", "source": src, "outputs": list(outputs), "execution_count": None}


def test_staging_maps_nbdev_directives_and_links(tmp_path):
    src = tmp_path / "01_a.ipynb"
    src.write_text(json.dumps(_nb({"cell_type": "markdown", "source": "# A\nsee `02_b`, `99_none`, ```\n`02_b` in code```"},
                                  _code("#| hide\nsecret = 1"), _code("#| export\ndef f(x): ..."),
                                  _code("#| echo: false\nprint(1)"), _code("#|output: false\nprint(2)"))))
    book.stage_notebook(src, tmp_path / "out.ipynb", {"01_a", "02_b"}, {"c2": [("f", "api/a.html#m.f")]})
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    assert cells[0]["source"].startswith("# A\nsee [`02_b`](02_b.ipynb), `99_none`")     # a known name links
    assert cells[1]["metadata"]["tags"] == ["remove-cell"] and "#|" not in cells[1]["source"]
    assert cells[2]["source"] == '<span id="cell-c2"></span>'                                 # the anchor of an export
    assert cells[3]["source"] == "def f(x): ..." and 'href="api/a.html#m.f"' in cells[4]["source"]
    assert cells[5]["metadata"]["tags"] == ["remove-input"] and cells[6]["metadata"]["tags"] == ["remove-output"]


def test_api_entries_carry_signature_docstring_docments_and_cell():
    entries = {e.name: e for e in book.module_entries(ROOT / "llama3_nb" / "config.py")}
    e = entries["ModelArgs"]
    assert e.kind == "class" and e.sig.startswith("(dim: int = 4096") and "params.json" in e.doc
    assert dict((p, c) for p, _, c in e.params)["dim"]                                    # the comment beside `dim`
    src = (NBS / f"{e.nb}.ipynb").read_text()
    assert e.nb == "00_config" and f'"id": "{e.cell}"' in src and "class ModelArgs" in src


# ------------------------------------------------------------------------------------------------ the book
def _build(nbs: Path, lib: Path, tmp: Path) -> tuple[int, Path, float]:
    out = tmp / "_docs"
    t0 = time.time()
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "book.py"), "--nbs", str(nbs), "--lib", str(lib),
                        "--stage", str(tmp / "stage"), "--out", str(out)], capture_output=True, text=True)
    print(r.stdout[-3000:], r.stderr[-3000:])
    return r.returncode, out, time.time() - t0


def test_book_builds_and_every_page_renders(tmp_path):
    _tools_or_skip()
    rc, out, secs = _build(NBS, ROOT / "llama3_nb", tmp_path)
    assert rc == 0, "the book did not build, or a link/reference in it does not resolve (see the output above)"
    assert secs <= 180, f"the build took {secs:.0f} s (budget 180 s)"
    stems = [p.stem for p in book.notebooks(NBS)]
    assert all((out / f"{s}.html").exists() for s in stems + ["index"])
    api = sorted((out / "api").glob("*.html"))
    assert len(api) >= 2, "no API reference pages"
    res = check_book.check(out, NBS)
    plots = [s for s in stems if check_book.notebook_has_plot(NBS / f"{s}.ipynb")]
    print(f"build {secs:.0f} s; {res['pages']} pages, {res['images']} images, {len(plots)} notebooks with a plot")
    assert res["failures"] == {}, "\n".join(f"{k}: {v}" for k, v in res["failures"].items())
    assert res["pages"] == len(stems) + 1 + len(api)
    # the sidebar: every stage in pipeline order, under the parts of the section table, then the API reference
    pages = [h.split("#")[0].removesuffix(".html") for h in res["sidebar"]]
    assert [p for p in pages if p in stems] == stems, res["sidebar"]
    parts = [part for part, _ in itertools.groupby(book.section(s)[0] for s in stems)]
    assert [p for p in res["sidebar_parts"] if p != "Reference"] == parts and "Reference" in res["sidebar_parts"]
    assert res["images"] >= len(plots) > 0


def test_the_check_catches_a_traceback_a_missing_plot_a_js_error_and_a_broken_link(tmp_path):
    "The same check on a tiny book with planted faults: it must name each one on its page."
    _tools_or_skip()
    nbs = tmp_path / "nbs"; nbs.mkdir()
    pngs = list(dict.fromkeys(o["data"]["image/png"] for p in book.notebooks(NBS)
                              for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code"
                              for o in c.get("outputs", []) if "image/png" in o.get("data", {})))[:2]
    assert len(pngs) == 2, "the notebooks store fewer than two distinct plots"
    img, img2 = ({"output_type": "display_data", "data": {"image/png": p, "text/plain": "<Figure>"}, "metadata": {}}
                 for p in pngs)
    err = {"output_type": "error", "ename": "ValueError", "evalue": "boom",
           "traceback": ["Traceback (most recent call last):", "  File \"x\", line 1", "ValueError: boom"]}
    md = lambda s: {"cell_type": "markdown", "source": s}
    (nbs / "index.ipynb").write_text(json.dumps(_nb(md("# Book\n\nthe index"))))
    (nbs / "01_ok.ipynb").write_text(json.dumps(_nb(md("# Fine\n\nsee `02_trace`"), _code("plot()", [img]))))
    (nbs / "02_trace.ipynb").write_text(json.dumps(_nb(md("# Trace"), _code("1/0", [err]))))
    (nbs / "03_noimg.ipynb").write_text(json.dumps(_nb(md("# Lost plot"), _code("plot()", [img2]))))
    (nbs / "04_js.ipynb").write_text(json.dumps(_nb(md("# Script\n\n<script>notDefinedAnywhere()</script>"))))
    lib = tmp_path / "lib"; lib.mkdir()
    rc, out, _ = _build(nbs, lib, tmp_path)
    assert rc == 0
    # the plot of 03 goes missing from the built book (as when images are not copied)
    html = (out / "03_noimg.html").read_text()
    lost = [p for p in (out / "_images").iterdir() if p.name in html]
    assert lost, "the plot of 03_noimg was not written as an image file"
    for p in lost: p.unlink()
    res = check_book.check(out, nbs)
    f = res["failures"]
    assert set(f) == {"02_trace", "03_noimg", "04_js"}, f                  # 01_ok and the index pass
    assert any("traceback" in p for p in f["02_trace"])
    assert any("no rendered image" in p for p in f["03_noimg"]) and any("broken images" in p for p in f["03_noimg"])
    assert any("JavaScript error" in p and "notDefinedAnywhere" in p for p in f["04_js"])
    # a link to a notebook that does not exist, or a reference to a name the package does not export, fails the build
    (nbs / "05_link.ipynb").write_text(json.dumps(_nb(md("# Link\n\n[gone](99_gone.ipynb), {py:obj}`llama3_nb.config.Nope`"))))
    rc, _, _ = _build(nbs, lib, tmp_path / "again")
    warnings = (tmp_path / "again" / "sphinx-warnings.txt").read_text()
    assert rc == 1 and "99_gone.ipynb" in warnings and "llama3_nb.config.Nope" in warnings, warnings
