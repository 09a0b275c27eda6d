"`llama3_nb scaling sweep` (a thin wrapper over `scaling_laws.run_sweep`) on a tiny sweep: results, manifest, resume, bad flags."
import json
from llama3_nb.scaling_laws import load_results
from llama3_nb.cli import main

def sweep_main(argv): return main(["scaling", "sweep", *argv])

TINY = ["--budgets", "2e9", "--shapes", "16x1,32x1,32x2", "--sizes", "2", "--mc-items", "20", "--data-chars", "50000",
        "--eval-batches", "1", "--no-progress"]

def test_tiny_sweep_runs_resumes_and_records(tmp_path):
    res = tmp_path / "s.jsonl"
    assert sweep_main(["--results", str(res)] + TINY) == 0
    rows = load_results(res)
    assert len(rows) == 2 and {(r["dim"], r["n_layers"]) for r in rows} <= {(16, 1), (32, 1), (32, 2)}
    for r in rows:
        assert abs(r["flops"] / r["budget"] - 1) < 0.35          # whole steps of 512 tokens round the budget
        assert 0 <= r["spell_acc"] <= 1 and r["eval_loss"] > 0 and r["threads"] == 1
    assert sweep_main(["--results", str(res)] + TINY) == 0      # resume: nothing left to do
    assert load_results(res) == rows
    man = json.loads(res.with_suffix(".manifest.json").read_text())
    assert len(man["invocations"]) == 2 and man["invocations"][0]["command"].startswith("llama3_nb scaling sweep --results")
    assert {"torch", "python", "started", "finished", "config"} <= set(man["invocations"][0])

def test_bad_flags_exit_2(tmp_path, capsys):
    assert sweep_main(["--results", str(tmp_path / "s.jsonl"), "--sizes", "0", "--no-progress"]) == 2
    assert "sizes" in capsys.readouterr().err
