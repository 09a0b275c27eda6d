"""`llama3_nb train` on bad input: one line naming the key, file or line, exit 2, before any training; divergence saves nothing non-finite."""
import json
import pytest, torch
from llama3_nb.cli import main
from llama3_nb.pretraining import load_train_state

BASE = 'max_steps = 4\nwarmup_steps = 0\ndata_chars = 30000\nckpt_every = 2\nprogress = false\nstages = [[0, 128, 32]]\n[model]\nvocab_size = 258\n'

@pytest.fixture
def cfg(tmp_path):
    (tmp_path / "t.toml").write_text(BASE); return tmp_path / "t.toml"

def run(capsys, *argv):
    capsys.readouterr(); rc = main(["train", *map(str, argv)]); return rc, capsys.readouterr().err.strip().splitlines()

def refused(capsys, want, *argv):
    rc, err = run(capsys, *argv)
    assert rc == 2 and len(err) == 1 and err[0].startswith("llama3_nb train: ") and want in err[0], (rc, err)

@pytest.mark.parametrize("sets,want", [
    (["lr=0"], "lr must be a finite number in (0, inf]"),
    (["lr=-1e-3"], "lr must be a finite number"),
    (["lr=NaN"], "lr must be a finite number"),
    (["stages=[[0, 0, 32]]"], "batch_tokens must be positive"),
    (["stages=[[0, 1024, 512]]"], "seq_len > the model's max_seq_len=256"),
    (["data_chars=0"], "data_chars must be >= 1"),
    (["device=\"bogus\""], "device 'bogus' is not a torch device"),
    (["learning_rate=1"], "unknown config key(s) ['learning_rate']"),
    (["lr=fast"], "config key 'lr' should be float"),
    (["lr"], "--set wants KEY=VALUE"),
])
def test_bad_config_values(cfg, tmp_path, capsys, sets, want):
    refused(capsys, want, cfg, "--out-dir", tmp_path / "o", *[a for s in sets for a in ("--set", s)])
    assert not (tmp_path / "o" / "ckpt").exists()

def test_bad_config_files(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("lr = = 1\n")
    refused(capsys, "bad.toml is not valid TOML", tmp_path / "bad.toml")
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    refused(capsys, "bad.json is not valid JSON", tmp_path / "bad.json")
    refused(capsys, "no config file at", tmp_path / "none.toml")

def test_a_data_file_with_a_bad_line(cfg, tmp_path, capsys):
    d = tmp_path / "d.jsonl"; d.write_text(json.dumps({"text": "hello"}) + "\n{oops\n")
    refused(capsys, f"{d}:2: not valid JSON", cfg, "--out-dir", tmp_path / "o", "--set", f'data="{d}"')
    d.write_text(json.dumps({"txt": "hello"}) + "\n")
    refused(capsys, f"{d}:1: expected an object with a string 'text'", cfg, "--out-dir", tmp_path / "o", "--set", f'data="{d}"')
    refused(capsys, f"out_dir {d} is the input", cfg, "--out-dir", d, "--set", f'data="{d}"')

def test_damaged_or_misfitting_checkpoint(cfg, tmp_path, capsys):
    assert run(capsys, cfg, "--out-dir", tmp_path / "o", "--max-steps", "2")[0] == 0
    latest = tmp_path / "o/ckpt/latest.pt"
    refused(capsys, "does not fit this run's model", cfg, "--out-dir", tmp_path / "o", "--set", 'model={"vocab_size": 258, "dim": 32, "n_heads": 2, "n_kv_heads": 1}')
    latest.write_bytes(latest.read_bytes()[:4000])
    refused(capsys, f"{latest} is not a readable checkpoint", cfg, "--out-dir", tmp_path / "o")
    latest.write_bytes(b"")
    refused(capsys, f"{latest} is not a readable checkpoint", cfg, "--out-dir", tmp_path / "o")

def test_divergence_leaves_only_finite_checkpoints(cfg, tmp_path, capsys):
    rc, err = run(capsys, cfg, "--out-dir", tmp_path / "o", "--set", "lr=1e6", "--set", "max_steps=30", "--set", "ckpt_every=1")
    assert rc == 3 and "the last good checkpoint is" in err[-1], err
    for f in (tmp_path / "o/ckpt").glob("*.pt"):
        assert all(torch.isfinite(v).all() for v in load_train_state(f)["model"].values()), f

def test_fresh_removes_the_last_runs_anneal_checkpoints(cfg, tmp_path, capsys):
    assert run(capsys, cfg, "--out-dir", tmp_path / "o", "--set", "anneal_steps=2")[0] == 0
    assert [p.name for p in sorted((tmp_path / "o/ckpt").glob("anneal_*.pt"))] == ["anneal_0000004.pt"]
    assert run(capsys, cfg, "--out-dir", tmp_path / "o", "--max-steps", "2", "--fresh")[0] == 0
    assert sorted(p.name for p in (tmp_path / "o/ckpt").iterdir()) == ["latest.pt"]

def test_scaling_sweep_checks_results_before_training(tmp_path, capsys, monkeypatch):
    capsys.readouterr(); assert main(["scaling", "sweep", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"llama3_nb scaling sweep: --results {tmp_path} is a folder; give the .jsonl file to append to"]
