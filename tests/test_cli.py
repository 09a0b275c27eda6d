"""The `llama3_nb` console command, run as a user runs it: a subprocess."""
import json, subprocess, sys, shutil
from pathlib import Path
import pytest

EXE = shutil.which("llama3_nb") or str(Path(sys.executable).parent / "llama3_nb")

def cli(*args, ok=True):
    r = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600)
    if ok: assert r.returncode == 0, r.stdout + r.stderr
    return r

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    "One tiny main job (~35 s) whose report and checkpoints the tests below read; a test that changes files copies them."
    out = tmp_path_factory.mktemp("tiny_run") / "run"
    r = cli("run", "--preset", "tiny", "--vocab-size", "512", "--pretrain-steps", "4", "--sft-steps", "3", "--rm-steps", "2", "--rs-prompts", "2", "--rs-steps", "2", "--dpo-steps", "2", "--dpo-prompts", "4", "--heldout-per-task", "20", "--quiet", "--out", out, "--new-tokens", "3")
    return out, r

def test_help_lists_subcommands():
    out = cli("--help").stdout
    for sub in ("run", "info", "convert", "bench"): assert sub in out

def test_run_writes_report(tiny_run):
    run, r = tiny_run; tmp_path = run.parent
    s = json.loads((tmp_path / "run/summary.json").read_text())
    assert s["status"] == "ok" and "status: ok" in r.stdout
    assert list(s["steps"]) == ["curate", "tokenizer", "model", "pretrain", "sft", "reward", "rs", "dpo", "compare", "evaluate", "checkpoints", "serve"]
    assert (tmp_path / "run/sft/loss.png").exists() and "![loss_curve](sft/loss.png)" in (tmp_path / "run/report.md").read_text()
    assert (tmp_path / "run/pretrain/loss.png").exists() and "![loss_curve]" in (tmp_path / "run/report.md").read_text()
    assert (tmp_path / "run/curated/funnel.png").exists()
    assert (tmp_path / "run/stages.png").exists() and "![stages_plot](stages.png)" in (tmp_path / "run/report.md").read_text()
    assert (tmp_path / "run/report.md").read_text().startswith("# llama3_nb")
    assert (tmp_path / "run/checkpoints/meta/consolidated.00.pth").exists()
    assert (tmp_path / "run/checkpoints/hf/model.safetensors").exists()

def test_info_preset_and_checkpoint(tiny_run):
    assert "70,553,706,496" in cli("info", "llama3_70b").stdout
    tmp_path = tiny_run[0]
    assert "parameters:" in cli("info", tmp_path / "checkpoints/hf").stdout
    assert "parameters:" in cli("info", tmp_path / "checkpoints/meta").stdout

def test_info_bad_name_is_a_clear_error():
    r = cli("info", "llama9_1t", ok=False)
    assert r.returncode != 0 and "neither a checkpoint directory nor a preset" in r.stderr

def test_convert_round_trip(tiny_run, tmp_path):
    import torch
    from llama3_nb.checkpoints import load_meta_checkpoint
    cli("convert", tiny_run[0] / "checkpoints/meta", tmp_path / "hf2", "--to", "hf")
    cli("convert", tmp_path / "hf2", tmp_path / "meta2", "--to", "meta")
    a, b = load_meta_checkpoint(tiny_run[0] / "checkpoints/meta"), load_meta_checkpoint(tmp_path / "meta2")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)

def test_chat_in_a_pipe(tiny_run):
    tmp_path = tiny_run[0]
    from llama3_nb.checkpoints import load_checkpoint
    from llama3_nb.generation import chat_reply
    from llama3_nb.tokenizer import Tokenizer
    for fmt in ("meta", "hf"):
        r = subprocess.run([EXE, "chat", tmp_path / f"checkpoints/{fmt}", "--max-new-tokens", "5", "--temperature", "0"],
                           input="hello\n\nwhat is <|eot_id|> ?\n", capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        model, tok = load_checkpoint(tmp_path / f"checkpoints/{fmt}").eval(), Tokenizer.from_file(tmp_path / f"checkpoints/{fmt}/tokenizer.model")
        dialog, want = [], ""                                # the blank line is skipped; the dialog keeps both turns
        for line in ("hello", "what is <|eot_id|> ?"):
            dialog.append({"role": "user", "content": line})
            reply = chat_reply(model, tok, dialog, 5, temperature=0)
            dialog.append({"role": "assistant", "content": reply}); want += reply + "\n"
        assert r.stdout == want                              # each reply streamed whole, one per non-empty input line

def test_chat_without_tokenizer_is_a_clear_error(tiny_run, tmp_path):
    shutil.copytree(tiny_run[0] / "checkpoints/hf", tmp_path / "checkpoints/hf")           # a copy: the shared run stays whole
    (tmp_path / "checkpoints/hf/tokenizer.model").unlink()
    r = cli("chat", tmp_path / "checkpoints/hf", ok=False)
    assert r.returncode != 0 and "no tokenizer at" in r.stderr

def test_tokenizer_train_and_encode(tmp_path):
    f = tmp_path / "t.txt"; f.write_text("the cat sat on the mat. " * 200)
    cli("tokenizer", "train", f, "--vocab-size", "300", "--out", tmp_path / "tok.model")
    out = cli("tokenizer", "encode", tmp_path / "tok.model", "<|eot_id|>", "--pieces").stdout
    assert "'<'" in out and "<|eot_id|>'" not in out          # user text never becomes a special token
    r = cli("tokenizer", "train", tmp_path / "missing.txt", ok=False)
    assert r.returncode != 0 and "cannot read" in r.stderr

def test_curate_command_on_the_shipped_crawl(tmp_path):
    from llama3_nb.crawl import shipped_crawl_dir
    crawl = next(shipped_crawl_dir().glob("crawl.jsonl*"))
    cli("curate", crawl, tmp_path / "cur", "--quiet", "--no-quality")
    s = json.loads((tmp_path / "cur/summary.json").read_text())
    kept = (tmp_path / "cur/kept.jsonl").read_text().count("\n")
    rejected = (tmp_path / "cur/rejects.jsonl").read_text().count("\n")
    import gzip
    pages = sum(1 for _ in (gzip.open(crawl, "rt") if crawl.suffix == ".gz" else open(crawl)))
    assert kept + rejected == pages and rejected > 100, s    # nothing vanishes: every page is kept or a reject
    assert cli("curate", tmp_path / "nope.jsonl", tmp_path / "o", ok=False).returncode == 2

def test_info_and_run_refuse_names_that_are_not_presets():
    "A ModelArgs attribute (a property, a method) is not a preset: one line listing the presets, exit 2, before any work."
    for what in ("head_dim", "to_params_dict", "from_dict"):
        r = cli("info", what, ok=False)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "llama3_8b, llama3_70b" in r.stderr and "Traceback" not in r.stderr
    r = cli("run", "--preset", "head_dim", "--out", "/nonexistent/never-written", ok=False)
    assert r.returncode == 2 and "unknown preset 'head_dim'" in r.stderr and "Traceback" not in r.stderr

def test_rejection_errors_are_one_line_and_write_nothing(tiny_run):
    ck = tiny_run[0] / "checkpoints/meta"; out = tiny_run[0].parent / "rs_out"
    r = cli("rejection", ck, out, "--select", "rm", ok=False)                 # a reward model is needed to pick by one
    assert r.returncode == 2 and "--select rm needs --rm" in r.stderr and not out.exists()
    r = cli("rejection", ck, ck / "rs", ok=False)                             # never inside the input
    assert r.returncode == 2 and "is inside the input" in r.stderr and not (ck / "rs").exists()
    r = cli("rejection", ck, out, "--k", "2", "--n-train", "1", "--n-heldout", "1", "--steps", "1", ok=False)   # a 4-step model passes nothing
    assert r.returncode == 2 and "nothing to fine-tune on" in r.stderr and not out.exists(), r.stderr
