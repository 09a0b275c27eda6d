"""Build the book of the notebooks: `nbs/*.ipynb` -> `_docs/` with Sphinx + MyST-NB, from stored outputs.

    python docs/book.py [--out _docs] [--stage _proc/book]

The notebooks are never executed: each page shows the outputs stored in its notebook. The notebooks are found
in `nbs/` (sorted by name = pipeline order), copied into a staging folder and lightly processed there (nbdev's
`#| hide` / `#| echo: false` / `#| output: false` directives become MyST-NB tags, directive lines are dropped from
the shown code, each exported cell gets an anchor and links to its API entries, a backticked notebook name such as
`03_model` becomes a link to its page); the originals are not touched. The API reference is read from the
exported modules `llama3_nb/*.py` with `ast` (no import): signature, docstring, the `# comment` beside each
parameter (nbdev's docments) and a link to the notebook cell that defines it (nbdev's `# %% ../nbs/NB.ipynb #id`
markers), i.e. what nbdev's `show_doc` shows.
"""
from __future__ import annotations

import argparse, ast, io, json, re, shutil, subprocess, sys, time, tokenize
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The report's section for each stage: the first pattern that matches a notebook's name wins, so a notebook this
# table does not know still lands in its number's part, and one with a new number in the default part.
# (pattern, sidebar part, section of "The Llama 3 Herd of Models")
SECTIONS = [
    (r"^00_", "Architecture and tokenizer", "§3.2, Table 3"),
    (r"^01_", "Architecture and tokenizer", "§3.2, §4.1.1"),
    (r"^02a_", "Pre-training data", "§3.1.1"),
    (r"^02c_", "Pre-training data", "§3.1.1, §3.1.2"),
    (r"^02e_", "Pre-training data", "§3.1.1, §4.2.3"),
    (r"^02", "Pre-training data", "§3.1.1"),
    (r"^03b_", "The model", "§3.3, Table 4"),
    (r"^03", "The model", "§3.2"),
    (r"^04", "The model", "§6"),
    (r"^05", "Pre-training", "§3.4.1"),
    (r"^06a_", "Pre-training", "§3.2, §3.4"),
    (r"^06c_", "Pre-training", "§3.1.3, §3.4.3"),
    (r"^06d_", "Pre-training", "§3.2.1"),
    (r"^06", "Pre-training", "§3.4"),
    (r"^07a_", "Post-training", "§4.2.2"),
    (r"^07", "Post-training", "§4.1.3"),
    (r"^08", "Post-training", "§4.1.2"),
    (r"^09", "Post-training", "§4.2.2"),
    (r"^10", "Post-training", "§4.2.2"),
    (r"^11", "Post-training", "§4.1.4"),
    (r"^12", "Inference", "§6.2"),
    (r"^13", "Scale", "§3.3.2"),
    (r"^14", "Evaluation", "§5"),
    (r"^15", "The whole recipe", "§2"),
    (r"^16", "The whole recipe", ""),
]
DEFAULT_SECTION = ("More stages", "")


def section(stem: str) -> tuple[str, str]:
    "The (sidebar part, report section) of the notebook `stem`."
    return next(((part, sec) for pat, part, sec in SECTIONS if re.match(pat, stem)), DEFAULT_SECTION)


def notebooks(nbs: Path) -> list[Path]:
    "The stage notebooks of `nbs`, in pipeline order (by name), without `index.ipynb`."
    return sorted(p for p in nbs.glob("*.ipynb") if p.stem != "index" and not p.stem.startswith(("_", ".")))


def title(nb: dict, stem: str) -> str:
    "The notebook's H1 title, or its name."
    for c in nb["cells"]:
        if c["cell_type"] == "markdown" and (m := re.search(r"^# (.+)$", "".join(c["source"]), re.M)):
            return re.sub(r"[`*]", "", m.group(1)).strip()
    return stem


# ---------------------------------------------------------------------------------------------- API reference
@dataclass
class Entry:
    "One reference entry: a function, class or method of an exported module."
    kind: str                      # function | class | method
    name: str                      # qualified in its module: `Transformer`, `Transformer.forward`
    sig: str                       # `(x: Tensor, dim: int = -1) -> Tensor`
    doc: str
    params: list[tuple[str, str, str]]   # (name, annotation and default, comment)
    nb: str                        # notebook stem that defines it
    cell: str                      # cell id in that notebook
    methods: list["Entry"] = field(default_factory=list)


def _comments(src: str) -> dict[int, str]:
    "Line number -> the `# comment` ending that line."
    out = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT: out[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError): pass
    return out


def _params(args: ast.arguments, comments: dict[int, str], drop_self: bool) -> tuple[str, list]:
    "The signature text and the docments of `args`."
    pos = args.posonlyargs + args.args
    defaults = [None] * (len(pos) - len(args.defaults)) + list(args.defaults)
    items = list(zip(pos, defaults)) + ([(args.vararg, "*")] if args.vararg else []) \
        + list(zip(args.kwonlyargs, args.kw_defaults)) + ([(args.kwarg, "**")] if args.kwarg else [])
    if args.kwonlyargs and not args.vararg: items.insert(len(pos), (None, "bare*"))
    if drop_self and pos and pos[0].arg in ("self", "cls"): items = [it for it in items if it[0] is not pos[0]]
    lines = [a.end_lineno for a, _ in items if a is not None]
    parts, params = [], []
    for a, d in items:
        if a is None: parts.append("*"); continue
        star = "*" if d == "*" else "**" if d == "**" else ""
        ann = f": {ast.unparse(a.annotation)}" if a.annotation is not None else ""
        dflt = f" = {ast.unparse(d)}" if isinstance(d, ast.AST) else ""
        parts.append(f"{star}{a.arg}{ann}{dflt}")
        # a comment belongs to a parameter when the parameter is the only one ending on that line
        com = comments.get(a.end_lineno, "") if lines.count(a.end_lineno) == 1 else ""
        params.append((star + a.arg, (ann[2:] + dflt).strip(), com))
    return "(" + ", ".join(parts) + ")", params


def _cell_of(markers: list[tuple[int, str, str]], line: int) -> tuple[str, str]:
    "The (notebook stem, cell id) of the last `# %%` marker before `line`."
    nb = cell = ""
    for ln, stem, cid in markers:
        if ln > line: break
        nb, cell = stem, cid
    return nb, cell


def _first_line(node) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def _is_dataclass(node: ast.ClassDef) -> bool:
    return any("dataclass" in ast.unparse(d) for d in node.decorator_list)


def _func(node, comments, markers, kind, qual) -> Entry:
    sig, params = _params(node.args, comments, drop_self=kind == "method")
    if node.returns is not None: sig += f" -> {ast.unparse(node.returns)}"
    nb, cell = _cell_of(markers, _first_line(node))
    return Entry(kind, qual, sig, ast.get_docstring(node) or "", params, nb, cell)


def _class(node: ast.ClassDef, comments, markers) -> Entry:
    nb, cell = _cell_of(markers, _first_line(node))
    init = next((b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == "__init__"), None)
    if init is not None:
        sig, params = _params(init.args, comments, drop_self=True)
    elif _is_dataclass(node):        # the generated __init__: the annotated fields, with the comment on each
        fields = [b for b in node.body if isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name)
                  and "ClassVar" not in ast.unparse(b.annotation)]
        sig = "(" + ", ".join(f"{f.target.id}: {ast.unparse(f.annotation)}"
                              + (f" = {ast.unparse(f.value)}" if f.value is not None else "") for f in fields) + ")"
        params = [(f.target.id, ast.unparse(f.annotation) + (f" = {ast.unparse(f.value)}" if f.value else ""),
                   comments.get(f.end_lineno, "")) for f in fields]
    else:
        sig, params = "", []
    e = Entry("class", node.name, sig, ast.get_docstring(node) or "", params, nb, cell)
    for b in node.body:
        if isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)) and not b.name.startswith("_"):
            e.methods.append(_func(b, comments, markers, "method", f"{node.name}.{b.name}"))
    return e


def module_entries(py: Path) -> list[Entry]:
    "The reference entries of the exported module `py`: its `__all__` functions and classes, with their methods."
    src = py.read_text(encoding="utf-8")
    tree, comments = ast.parse(src), _comments(src)
    markers = [(i + 1, m.group(1), m.group(2)) for i, l in enumerate(src.splitlines())
               if (m := re.match(r"# %% \.\./nbs/(?:.*/)?([^/]+)\.ipynb #?(\S+)", l))]
    public = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                   and any(getattr(t, "id", "") == "__all__" for t in n.targets)), None)
    entries, by_name = [], {}
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            patched = next((d for d in n.decorator_list if ast.unparse(d).split("(")[0] in ("patch", "patch_to")), None)
            if patched is not None:      # fastcore's @patch: a method of the class in the first annotation
                a0 = (n.args.posonlyargs + n.args.args)[:1]
                cls = ast.unparse(a0[0].annotation) if a0 and a0[0].annotation is not None else ""
                if cls in by_name and not n.name.startswith("_"):
                    by_name[cls].methods.append(_func(n, comments, markers, "method", f"{cls}.{n.name}"))
                continue
            if public is None and n.name.startswith("_") or public is not None and n.name not in public: continue
            entries.append(e := _func(n, comments, markers, "function", n.name)); by_name[n.name] = e
        elif isinstance(n, ast.ClassDef):
            if public is None and n.name.startswith("_") or public is not None and n.name not in public: continue
            entries.append(e := _class(n, comments, markers)); by_name[n.name] = e
    return entries


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def entry_md(e: Entry, mod: str, depth: int = 0, cell_no: dict | None = None) -> str:
    "A MyST `py:` directive for `e`, with its docments and the link to its notebook cell."
    directive = {"function": "py:function", "class": "py:class", "method": "py:method"}[e.kind]
    name = e.name.split(".")[-1]
    fence = "`" * (4 + (1 if e.methods else 0) - depth)
    lines = [f"{fence}{{{directive}}} {name}{e.sig}"]
    if depth == 0: lines.append(f":module: {mod}")
    lines += ["", e.doc or "*(no docstring)*", ""]
    if any(c for _, _, c in e.params):
        lines += ["| parameter | type and default | |", "|---|---|---|"]
        lines += [f"| `{p}` | {'`' + _md_escape(t) + '`' if t else ''} | {_md_escape(c)} |" for p, t, c in e.params]
        lines.append("")
    if e.nb:
        n = (cell_no or {}).get((e.nb, e.cell))
        lines += [f'<p class="defined-in">Defined in <a class="reference internal" href="../{e.nb}.html#cell-{e.cell}">'
                  f'<code>{e.nb}</code>{f", cell {n}" if n else ""}</a></p>', ""]
    for m in e.methods: lines += [entry_md(m, mod, depth + 1, cell_no), ""]
    lines.append(fence)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- staging
DIRECTIVE = re.compile(r"^\s*#\s*\|\s*(.*?)\s*$")


def _cell_tags(src: str) -> tuple[list[str], str, bool]:
    "MyST-NB tags for nbdev's directives, the source without its directive lines, and whether it exports."
    tags, keep, exported = [], [], False
    for line in src.splitlines(keepends=True):
        if m := DIRECTIVE.match(line):
            d = m.group(1).lower().replace(" ", "")
            if d in ("hide", "include:false", "eval:false,include:false") or d.startswith("hide_"): tags.append("remove-cell")
            elif d == "echo:false": tags.append("remove-input")
            elif d == "output:false": tags.append("remove-output")
            elif d.split(":")[0] in ("export", "exports", "exporti"): exported = True
            continue
        keep.append(line)
    return tags, "".join(keep).lstrip("\n"), exported


def _link_names(md: str, stems: set[str], symbols: dict[str, str] | None = None) -> str:
    """Outside code blocks and links, a backticked notebook name (`03_model`) links to its page and a backticked
    exported name (`ModelArgs`, `ModelArgs.tiny`) to its API entry, as nbdev's docs do."""
    symbols = symbols or {}

    def sub(m):
        name = m.group(1)
        if name in stems: return f"[`{name}`]({name}.ipynb)"
        if name.removesuffix("()") in symbols: return f"{{py:obj}}`{name} <{symbols[name.removesuffix('()')]}>`"
        return m.group(0)
    out, fenced = [], False
    for line in md.splitlines(keepends=True):
        if line.lstrip().startswith(("```", "~~~")): fenced = not fenced
        if not fenced: line = re.sub(r"(?<![\[}])`([A-Za-z_0-9][\w.]*(?:\(\))?)`(?!\])", sub, line)
        out.append(line)
    return "".join(out)


def stage_notebook(src: Path, dst: Path, stems: set[str], api_links: dict[str, list[tuple[str, str]]],
                   symbols: dict[str, str] | None = None):
    "Copy one notebook into the staging folder with the book's light processing (see the module docstring)."
    nb = json.loads(src.read_text(encoding="utf-8"))
    cells = []
    for c in nb["cells"]:
        c = dict(c, metadata=dict(c.get("metadata", {})))
        srcs = "".join(c["source"])
        if c["cell_type"] == "markdown":
            c["source"] = _link_names(srcs, stems, symbols)
            cells.append(c); continue
        if c["cell_type"] != "code": cells.append(c); continue
        tags, code, exported = _cell_tags(srcs)
        c["source"] = code
        if tags: c["metadata"]["tags"] = sorted(set(c["metadata"].get("tags", []) + tags))
        if exported and "remove-cell" not in tags:
            cid = c.get("id", "")
            cells.append({"cell_type": "markdown", "id": f"a-{cid}"[:64], "metadata": {},
                          "source": f'<span id="cell-{cid}"></span>'})
            cells.append(c)
            if links := api_links.get(cid):
                refs = ", ".join(f'<a class="reference internal" href="{href}"><code>{name}</code></a>' for name, href in links)
                cells.append({"cell_type": "markdown", "id": f"r-{cid}"[:64], "metadata": {},
                              "source": f'<p class="api-links">API reference: {refs}</p>'})
            continue
        cells.append(c)
    nb["cells"] = cells
    dst.write_text(json.dumps(nb, ensure_ascii=False, indent=1), encoding="utf-8")


CONF = '''# generated by docs/book.py: the book's Sphinx configuration
project = {project!r}
author = {author!r}
copyright = {copyright!r}
extensions = ["myst_nb", "sphinx-mathjax-offline"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
nb_execution_mode = "off"            # the book shows the outputs stored in the notebooks; nothing is executed
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "html_image", "linkify"]
myst_heading_anchors = 3
myst_linkify_fuzzy_links = False
suppress_warnings = ["misc.highlighting_failure", "myst.header"]
nitpicky = True                      # a reference to an exported name must resolve; other libraries' names need not
nitpick_ignore_regex = [(r"py:.*", r"(?!{pkg}\\.).*")]
html_theme = "sphinx_book_theme"
html_title = {project!r}
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_theme_options = {{"show_toc_level": 2, "home_page_in_toc": True, "use_download_button": False,
                      "use_fullscreen_button": False}}
html_context = {{"default_mode": "light"}}   # without it the theme logs a console error on a first visit
html_show_sourcelink = False
html_copy_source = False
'''

CSS = """.api-links, .defined-in { font-size: 0.85em; color: #555; margin-top: -0.4em; }
.bd-sidebar-primary .caption-text { text-transform: none; }
"""


def stage(nbs: Path, lib: Path, out: Path) -> dict:
    "Write the Sphinx sources of the book into `out`; returns what it staged."
    if out.exists(): shutil.rmtree(out)
    (out / "api").mkdir(parents=True); (out / "_static").mkdir()
    cfg = dict(l.split("=", 1) for l in (ROOT / "settings.ini").read_text().splitlines() if "=" in l and not l.startswith("#"))
    cfg = {k.strip(): v.strip() for k, v in cfg.items()}
    pkg = cfg.get("lib_name", "llama3_nb")
    nbl = notebooks(nbs)
    stems = {p.stem for p in nbl}
    cell_no = {(p.stem, c.get("id")): i + 1 for p in nbl
               for i, c in enumerate(json.loads(p.read_text(encoding="utf-8"))["cells"])}
    # API reference: one page per exported module, entries in notebook order
    modules, api_links, seen = [], {}, {}
    for py in sorted(lib.glob("*.py")):
        if py.name.startswith("_"): continue
        entries = module_entries(py)
        if not entries: continue
        mod = f"{pkg}.{py.stem}"
        nb_of = next((e.nb for e in entries if e.nb), "")
        modules.append((nb_of, py.stem, mod, len(entries)))
        page = [f"# `{mod}`", "", f"Exported by [`{nb_of}`](../{nb_of}.ipynb)." if nb_of in stems else "", ""]
        for e in entries:
            page += [entry_md(e, mod, cell_no=cell_no), ""]
            for x in [e] + e.methods:
                if x.cell: api_links.setdefault(x.cell, []).append((x.name, f"api/{py.stem}.html#{mod}.{x.name}"))
                seen.setdefault(x.name, []).append(f"{mod}.{x.name}")
        (out / "api" / f"{py.stem}.md").write_text("\n".join(page), encoding="utf-8")
    modules.sort()
    api_index = ["# API reference", "", "Every function and class that the notebooks export, module by module, "
                 "with its signature, docstring, parameters and a link to the notebook cell that defines it.", "",
                 "| module | notebook | entries |", "|---|---|---|"]
    api_index += [f"| [`{m}`]({s}.md) | [`{n}`](../{n}.ipynb) | {k} |" if n in stems else f"| [`{m}`]({s}.md) | | {k} |"
                  for n, s, m, k in modules]
    api_index += ["", "```{toctree}", ":hidden:", ""] + [s for _, s, _, _ in modules] + ["```", ""]
    (out / "api" / "index.md").write_text("\n".join(api_index), encoding="utf-8")
    symbols = {k: v[0] for k, v in seen.items() if len(v) == 1}      # a name two modules export links nowhere
    # the notebooks
    pages = []
    for p in nbl:
        stage_notebook(p, out / p.name, stems, api_links, symbols)
        part, sec = section(p.stem)
        label = f"{p.stem.split('_')[0]} · {title(json.loads(p.read_text(encoding='utf-8')), p.stem)}"
        pages.append((p.stem, part, sec, label + (f" ({sec})" if sec else "")))
    # the index page carries the sidebar: one hidden toctree per run of stages in the same part
    stage_notebook(nbs / "index.ipynb", out / "index.ipynb", stems, api_links, symbols)
    idx = json.loads((out / "index.ipynb").read_text(encoding="utf-8"))
    toc, run = [], None
    for stem, part, sec, label in pages:
        if part != run:
            if run is not None: toc.append("```\n")
            toc += ["```{toctree}", f":caption: {part}", ":hidden:", ""]
            run = part
        toc.append(f"{label.replace('<', '&lt;')} <{stem}>")
    toc += ["```", "", "```{toctree}", ":caption: Reference", ":hidden:", "", "API reference <api/index>", "```"]
    idx["cells"].append({"cell_type": "markdown", "id": "book-toc", "metadata": {}, "source": "\n".join(toc)})
    (out / "index.ipynb").write_text(json.dumps(idx, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "conf.py").write_text(CONF.format(project=cfg.get("title", pkg), author=cfg.get("author", ""), pkg=pkg,
                                             copyright=cfg.get("copyright", "")), encoding="utf-8")
    (out / "_static" / "book.css").write_text(CSS, encoding="utf-8")
    return {"pages": pages, "modules": modules}


def build(stage_dir: Path, out: Path, jobs: str = "1") -> subprocess.CompletedProcess:
    "Run Sphinx on the staged sources into `out`; its warnings go to `sphinx-warnings.txt` beside the staging folder."
    # Sphinx writes into the staging area, since MyST-NB puts a `jupyter_execute/` folder beside its output folder
    html, warn = stage_dir.parent / "html", stage_dir.parent / "sphinx-warnings.txt"
    for p in (out, html, stage_dir.parent / "jupyter_execute"):
        if p.exists(): shutil.rmtree(p)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", jobs, "-w", str(warn),
           "-d", str(stage_dir.parent / "doctrees"), str(stage_dir), str(html)]
    r = subprocess.run(cmd, text=True)
    if html.exists():
        out.parent.mkdir(parents=True, exist_ok=True); shutil.move(str(html), str(out))
    return r


# Sphinx warnings that mean a reader would meet a broken page: a link or reference that does not resolve, a page
# outside the sidebar, a notebook that cannot be read. Anything else (e.g. a lexer that cannot colour a block) passes.
FATAL = re.compile(r"reference target not found|xref_missing|undefined label|unknown document|"
                   r"toc\.not_included|document isn't included in any toctree|Notebook JSON is invalid|"
                   r"failed to read|image file not readable|duplicate object description", re.I)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nbs", default=str(ROOT / "nbs"))
    ap.add_argument("--lib", default=str(ROOT / "llama3_nb"))
    ap.add_argument("--stage", default=str(ROOT / "_proc" / "book" / "src"))
    ap.add_argument("--out", default=str(ROOT / "_docs"))
    ap.add_argument("--jobs", default="1", help="Sphinx's -j (default 1)")
    a = ap.parse_args(argv)
    nbs, lib, stage_dir, out = Path(a.nbs), Path(a.lib), Path(a.stage), Path(a.out)
    if not (nbs / "index.ipynb").exists():
        print(f"error: no index.ipynb in {nbs}", file=sys.stderr); return 2
    t0 = time.time()
    info = stage(nbs, lib, stage_dir)
    r = build(stage_dir, out, a.jobs)
    warn = (stage_dir.parent / "sphinx-warnings.txt")
    lines = warn.read_text(encoding="utf-8").splitlines() if warn.exists() else []
    fatal = [l for l in lines if FATAL.search(l)]          # Sphinx has printed them already
    n_api = sum(k for *_, k in info["modules"])
    print(f"book: {len(info['pages']) + 1} notebook pages, {len(info['modules'])} API pages ({n_api} entries) "
          f"-> {out} in {time.time() - t0:.0f} s; {len(lines)} Sphinx warnings ({warn}), {len(fatal)} that break a page")
    if r.returncode != 0 or fatal: return 1
    print(f"open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
