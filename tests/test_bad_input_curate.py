"""`llama3_nb curate` on bad input: its input is never overwritten, every numeric option is checked before any work."""
import hashlib, json
import pytest
from llama3_nb.cli import main

@pytest.fixture
def crawl(tmp_path):
    p = tmp_path / "in" / "crawl.jsonl"; p.parent.mkdir()
    p.write_text("".join(json.dumps({"url": f"http://x/{i}", "fetched_at": "2024-01-01", "html": f"<p>page {i} " + "word " * 40 + "</p>"}) + "\n" for i in range(5)))
    return p

def refused(capsys, want, *argv):
    capsys.readouterr(); rc = main(["curate", *map(str, argv)]); err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("llama3_nb curate: ") and want in err[0], (rc, err)

def test_curate_never_writes_over_its_input(crawl, capsys):
    before = hashlib.sha1(crawl.read_bytes()).hexdigest()
    refused(capsys, "holds the input", crawl, crawl.parent, "--no-quality", "--quiet")      # would write kept.jsonl beside it...
    crawl.rename(crawl.parent / "kept.jsonl"); kept = crawl.parent / "kept.jsonl"
    refused(capsys, "holds the input", kept, kept.parent, "--no-quality", "--quiet")        # ...or over it (the case)
    refused(capsys, "is the input", kept, kept, "--no-quality", "--quiet")
    assert hashlib.sha1(kept.read_bytes()).hexdigest() == before

@pytest.mark.parametrize("opt,val,want", [
    ("--bucket-size", "0", "--bucket-size must be >= 1, got 0"),
    ("--max-html-bytes", "-5", "--max-html-bytes must be >= 1, got -5"),
    ("--max-line-count", "0", "--max-line-count must be >= 1"),
    ("--dup-threshold", "1.5", "--dup-threshold must be a finite number in (0, 1]"),
    ("--dup-threshold", "nan", "--dup-threshold must be a finite number"),
    ("--quality-threshold", "-0.1", "--quality-threshold must be a finite number in [0, 1]"),
    ("--mix", "web=a", "--mix wants DOMAIN=SHARE"),
    ("--mix", "web", "--mix wants DOMAIN=SHARE"),
    ("--mix", "web=-1", "--mix share of 'web' must be a finite number"),
    ("--mix", "web=0", "--mix shares must not all be 0"),
])
def test_bad_options_are_refused_before_any_work(crawl, tmp_path, capsys, opt, val, want):
    refused(capsys, want, crawl, tmp_path / "out", opt, val, "--quiet")
    assert not (tmp_path / "out").exists()

def test_missing_input(tmp_path, capsys):
    refused(capsys, "no such file", tmp_path / "none.jsonl", tmp_path / "out")
