"Smoke test of bench_tokenizer (the `llama3_nb bench tokenizer` figures); timings are returned, never asserted."
from llama3_nb.tokenizer import bench_tokenizer

def test_bench_tokenizer_returns_the_figures(capsys):
    res = bench_tokenizer(n_chars=60_000, vocab_size=512, n_heldout=5_000)
    assert res["vocab_size"] == 512 and res["train_chars"] == 60_000 and res["encode_chars"] == 10_000
    assert set(res["compression"]) == {256, 512}
    assert res["compression"][512]["prose"] > res["compression"][256]["prose"]
    assert all(res[k] > 0 for k in ("train_s", "tiktoken_s", "python_s", "python_regex_s", "speedup", "speedup_regex"))
    assert "chars/token" in capsys.readouterr().out
