"""`llama3_nb curate IN OUT` (a thin wrapper over `curate.curate`): runs, survives bad input, loses nothing."""
import gzip, json
from pathlib import Path
import pytest
from llama3_nb.crawl import read_jsonl, shipped_crawl_dir
from llama3_nb.cli import main

def curate_main(argv): return main(["curate", *argv])       # the command, as a user runs it

CRAWL = shipped_crawl_dir() / "crawl.jsonl.gz"


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(l + b"\n" for l in lines)); return path


@pytest.fixture(scope="module")
def small_crawl(tmp_path_factory):
    rows = read_jsonl(CRAWL)[:120]
    return _write(tmp_path_factory.mktemp("c") / "small.jsonl", [json.dumps(r).encode() for r in rows])


def test_bad_input_is_counted_reported_and_the_run_continues(tmp_path, small_crawl, capsys):
    good = small_crawl.read_bytes().splitlines()[:30]
    bad = [b'{"url": "a", "fetched_at": ', b'{"url": "b", "fetched_at": "t", "html": "\xc3\x28 bad utf8"}',
           b'{"url": "c", "fetched_at": "t", "html": ""}', b'{"url": "d", "fetched_at": "t", "html": "<p>' + b"w " * 60_000 + b'</p>"}',
           b'{"url": 5, "fetched_at": "t", "html": "x"}', b'']
    src = _write(tmp_path / "bad.jsonl", good[:10] + bad + good[10:])
    assert curate_main([str(src), str(tmp_path / "out"), "--no-quality", "--max-html-bytes", "100000"]) == 0
    rej = read_jsonl(tmp_path / "out" / "rejects.jsonl")
    inp = {r["line"]: r["reason"] for r in rej if r["step"] == "input"}
    assert sorted(inp) == [11, 12, 13, 14, 15, 16]
    assert inp[11].startswith("malformed JSON") and inp[12].startswith("invalid UTF-8")
    assert inp[13] == "empty page" and inp[14].startswith("enormous line") and inp[16] == "blank line"
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["lines"] == 36 and s["counts"]["input:empty page"] == 1
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    assert sorted([r["line"] for r in kept] + [r["line"] for r in rej]) == list(range(1, 37))
    assert "kept" in capsys.readouterr().out                  # the printed summary


def test_missing_input_file(tmp_path):
    assert curate_main([str(tmp_path / "nope.jsonl"), str(tmp_path / "o"), "--quiet"]) == 2


def test_full_run_with_classifiers_and_mix(tmp_path, small_crawl):
    assert curate_main([str(small_crawl), str(tmp_path / "o"), "--quiet", "--bucket-size", "60"]) == 0
    out = tmp_path / "o"
    kept, rej, mix = (read_jsonl(out / f) for f in ("kept.jsonl", "rejects.jsonl", "mix.jsonl"))
    assert sorted([r["line"] for r in kept] + [r["line"] for r in rej]) == list(range(1, 121))
    assert {r["domain"] for r in kept} <= {"general", "math", "code", "multilingual"}
    assert all(r["step"] and r["reason"] for r in rej)
    assert {r["line"] for r in mix} <= {r["line"] for r in kept}
    s = json.loads((out / "summary.json").read_text())
    assert abs(sum(s["mix"]["reached"].values()) - 1) < 1e-3
    assert not any("@mail." in r["text"] for r in kept)      # PII redacted in what is kept


def test_gzip_input_and_output_is_deterministic(tmp_path, small_crawl):
    gz = tmp_path / "small.jsonl.gz"; gz.write_bytes(gzip.compress(small_crawl.read_bytes()))
    for o in ("a", "b"): assert curate_main([str(gz), str(tmp_path / o), "--quiet", "--no-quality"]) == 0
    assert (tmp_path / "a" / "kept.jsonl").read_bytes() == (tmp_path / "b" / "kept.jsonl").read_bytes()
    assert (tmp_path / "a" / "kept.jsonl").read_bytes() == _kept_plain(tmp_path, small_crawl)


def _kept_plain(tmp_path, src):
    curate_main([str(src), str(tmp_path / "p"), "--quiet", "--no-quality"]); return (tmp_path / "p" / "kept.jsonl").read_bytes()
