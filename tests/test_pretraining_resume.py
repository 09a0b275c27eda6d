"""Resume exactness across a real process kill: `llama3_nb train` in a subprocess, SIGKILLed after a checkpoint, restarted."""
import json, os, signal, subprocess, sys
from pathlib import Path
import torch

RUN = "import sys; from llama3_nb.cli import main; sys.exit(main(['train'] + sys.argv[1:]))"
CONFIG = """max_steps = 40
warmup_steps = 4
min_lr = 3e-4
anneal_steps = 8
stages = [[0, 256, 32], [2048, 512, 64]]
data = "stdlib"
anneal_data = "stdlib,math*2"
data_chars = 60000
ckpt_every = 2
eval_every = 10
eval_batches = 1
[model]
vocab_size = 258
"""

def _cmd(cfg, out, *extra): return [sys.executable, "-c", RUN, str(cfg), "--out-dir", str(out), *extra]

def _losses(out): return [json.loads(l)["loss"] for l in (out / "metrics.jsonl").read_text().splitlines()]

def test_kill_and_resume_gives_identical_losses(tmp_path):
    cfg = tmp_path / "run.toml"; cfg.write_text(CONFIG)
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = subprocess.run(_cmd(cfg, full, "--set", "threads=1"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    p = subprocess.Popen(_cmd(cfg, cut, "--set", "threads=1"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:                                   # kill the process right after its 3rd checkpoint
        if line.startswith("checkpoint: step 6 "): os.kill(p.pid, signal.SIGKILL); break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    stopped = torch.load(cut / "ckpt/latest.pt", weights_only=True)["state"]["step"]
    assert 6 <= stopped < 40, stopped                       # it really was interrupted mid-run
    r = subprocess.run(_cmd(cfg, cut, "--no-progress", "--set", "threads=1"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = _losses(full), _losses(cut)
    assert len(a) == len(b) == 40
    assert a == b                                           # bitwise: the same floats, step for step
    wa = torch.load(full / "ckpt/latest.pt", weights_only=True)["model"]
    wb = torch.load(cut / "ckpt/latest.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert len(list((cut / "ckpt").glob("anneal_*.pt"))) == 4 and (cut / "loss.png").is_file()

def test_checkpoint_has_everything_and_loads_weights_only(tmp_path):
    cfg = tmp_path / "run.toml"; cfg.write_text(CONFIG)
    r = subprocess.run(_cmd(cfg, tmp_path / "o", "--max-steps", "4", "--set", "anneal_steps=0", "--no-progress"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    c = torch.load(tmp_path / "o/ckpt/latest.pt", weights_only=True)
    assert {"model", "optimizer", "state", "rng", "data_pos", "config"} <= set(c)
    assert c["state"]["step"] == 4 and c["state"]["tokens"] == 4 * 256
    assert {"torch", "python", "numpy"} <= set(c["rng"]) and c["data_pos"]["train"] == 4 * 256
    assert len(c["optimizer"]["state"]) > 0
    assert not list((tmp_path / "o/ckpt").glob("*.tmp"))     # the temporary file was renamed away
