"""Streaming: peak RSS of `curate` on 4x the sample stays close to 1x (memory does not grow with the input).

The classifiers are skipped here to keep the test short: they are trained on a fixed-size generated crawl, so their
memory does not depend on the input either (the full pipeline: `bench_curation(rss=True)`)."""
import json
from llama3_nb.crawl import CrawlConfig, save_crawl, shipped_crawl_dir
from llama3_nb.curate import peak_rss_mb


def test_peak_rss_does_not_grow_with_input(tmp_path):
    big = save_crawl(tmp_path / "x4", CrawlConfig(scale=4))
    one = peak_rss_mb(shipped_crawl_dir() / "crawl.jsonl.gz", tmp_path / "o1", quality=False)
    four = peak_rss_mb(big, tmp_path / "o4", quality=False)
    lines1 = json.loads((tmp_path / "o1" / "summary.json").read_text())["lines"]
    lines4 = json.loads((tmp_path / "o4" / "summary.json").read_text())["lines"]
    print(f"peak RSS: {one:.0f} MB for {lines1} pages, {four:.0f} MB for {lines4} pages")
    assert lines4 > 3.5 * lines1
    assert four < one * 1.25 + 20      # 4x the pages; the state is ~1 KB per doc (signatures, band keys, URLs)
