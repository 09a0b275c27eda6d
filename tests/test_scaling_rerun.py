"Re-run the cheapest committed sweep point and compare its loss with the committed value."
import json
from pathlib import Path
import pytest
from llama3_nb.scaling_laws import SweepConfig, run_point, load_results

DATA = Path(__file__).resolve().parents[1] / "data_samples" / "scaling"
# Bitwise equal on the machine that made the data (1 torch thread, bf16 autocast, seed 0); the tolerance leaves room for
# another CPU's bf16 kernels. Threads are pinned by the config (`threads=1`), since the thread count changes the sums.
TOL = 2e-3

def test_rerun_cheapest_point():
    rows = load_results(DATA / "sweep.jsonl")
    if not rows: pytest.skip("no committed sweep results")
    cfg = SweepConfig(**json.loads((DATA / "sweep.manifest.json").read_text())["invocations"][0]["config"])
    ref = min(rows, key=lambda r: r["seconds"])
    got = run_point(cfg, ref["budget"], [ref["dim"], ref["n_layers"]])
    assert got["id"] == ref["id"] and got["tokens"] == ref["tokens"]
    assert abs(got["eval_loss"] - ref["eval_loss"]) <= TOL, (got["eval_loss"], ref["eval_loss"])
    assert abs(got["spell_nll"] - ref["spell_nll"]) <= TOL
