"""`llama3_nb bench gpu`: it refuses without CUDA, and its whole measuring path runs on CPU at tiny shapes."""
import json, shutil, subprocess, sys
from pathlib import Path
import pytest
import torch

EXE = shutil.which("llama3_nb") or str(Path(sys.executable).parent / "llama3_nb")

@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
@pytest.mark.parametrize("cmd", [[EXE], [sys.executable, "-m", "llama3_nb.cli"]])
def test_refuses_without_cuda(tmp_path, cmd):
    out = tmp_path / "figs.json"
    r = subprocess.run([*cmd, "bench", "gpu", "--out", str(out), "--quick"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["llama3_nb bench gpu: needs a CUDA device (torch.cuda.is_available() is False)"]
    assert not out.exists()

def test_tiny_cpu_run_writes_every_key(tmp_path):
    from llama3_nb.gpu_bench import FIGURE_KEYS, GpuBench, gpu_figures
    torch.set_num_threads(1)
    res = gpu_figures(tmp_path / "sub" / "figs.json", device="cpu", cfg=GpuBench.tiny(), command="test")
    saved = json.loads((tmp_path / "sub" / "figs.json").read_text())
    assert set(saved) == set(FIGURE_KEYS) and saved["errors"] == {} and saved["command"] == "test"
    e2e = saved["fp8_end_to_end"]
    assert e2e["fp8_layers"] == [1] and e2e["compiled"] is False
    assert [r["batch"] for r in e2e["rows"]] == [1, 2]
    for r in e2e["rows"]:
        for k in ("prefill_ratio", "decode_ratio", "end_to_end_ratio"): assert r[k] > 0
    assert [r["context"] for r in saved["decode_attention"]["rows"]] == [32, 64]
    assert all(r["in_place_ms"] is None for r in saved["decode_attention"]["rows"])
    ms = saved["model_speed"]
    assert ms["max_abs_logit_diff"] < 1e-2 and ms["ours_step_mfu"] is None and ms["ours_step_tok_s"] > 0
    assert saved["fp8_gemm"] is None and saved["device"] == "cpu" and res["wall_s"] < 20

def test_peak_table():
    from llama3_nb.gpu_bench import peak_bf16
    assert peak_bf16("NVIDIA H100 80GB HBM3") == peak_bf16("NVIDIA H200") == 989.0
    assert peak_bf16("NVIDIA H100 PCIe") == 756.0 and peak_bf16("Tesla T4") is None
