"The map's rule, read from the notebooks themselves: a notebook (and the module it exports) imports only from notebooks before it."
import json, re
from pathlib import Path

NBS = Path(__file__).parent.parent / "nbs"
# No known exceptions: the reply sampler lives in 04_generation, so 08 no longer needs the paged engine of 09.
KNOWN: set[tuple[str, str]] = set()

def _notebooks() -> list[Path]: return sorted(NBS.glob("[0-9]*.ipynb"))

def _module_of(nb: Path) -> str | None:
    cells = json.loads(nb.read_text())["cells"]
    m = re.search(r"#\|\s*default_exp\s+(\w+)", "".join(cells[0]["source"])) if cells else None
    return m[1] if m else None

def _imports(nb: Path) -> set[str]:
    "Modules of llama3_nb that the notebook's code cells import (`from llama3_nb.x import`, `import llama3_nb.x`, `from llama3_nb import x, y`)."
    code = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
    mods = set(re.findall(r"(?:from|import)\s+llama3_nb\.(\w+)", code))
    return mods | {w.strip() for g in re.findall(r"from\s+llama3_nb\s+import\s+([\w, ]+)", code) for w in g.split(",")}

def violations() -> set[tuple[str, str]]:
    nbs = _notebooks(); order = {nb.stem: i for i, nb in enumerate(nbs)}
    home = {m: nb.stem for nb in nbs if (m := _module_of(nb))}
    return {(nb.stem, mod) for nb in nbs for mod in _imports(nb) if mod in home and order[home[mod]] > order[nb.stem]}

def test_every_notebook_exports_one_module_named_after_it():
    for nb in _notebooks():
        mod = _module_of(nb)
        assert mod, f"{nb.name} has no #| default_exp"
        assert mod in nb.stem, f"{nb.name} exports {mod}: a module carries its notebook's name"

def test_notebooks_import_only_from_earlier_notebooks():
    assert violations() == KNOWN, f"imports from later notebooks: {sorted(violations() - KNOWN)}; fixed, remove from KNOWN: {sorted(KNOWN - violations())}"

def test_the_check_catches_a_late_import(tmp_path, monkeypatch):
    "A notebook that imports a later one's module is caught (the check can fail)."
    for nb in _notebooks(): (tmp_path / nb.name).write_text(nb.read_text())
    bad = json.loads((tmp_path / "00_config.ipynb").read_text())
    bad["cells"].append({"cell_type": "code", "metadata": {}, "source": ["from llama3_nb.dpo import dpo_loss\n"], "outputs": [], "execution_count": None})
    (tmp_path / "00_config.ipynb").write_text(json.dumps(bad))
    monkeypatch.setattr(__import__(__name__), "NBS", tmp_path)
    assert ("00_config", "dpo") in violations()
