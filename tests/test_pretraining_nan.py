"""A loss that turns NaN or inf stops the run, names the step, and keeps the last good checkpoint."""
import json, re, subprocess, sys
import pytest, torch
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.pretraining import NonFiniteLoss, TrainConfig, train, load_train_state

class Poisoned(Transformer):
    "Returns NaN logits from the `bad_from`-th forward call on."
    def __init__(self, args, bad_from, value=float("nan")):
        super().__init__(args); self.calls, self.bad_from, self.value = 0, bad_from, value
    def forward(self, tokens, start_pos=0, cache=None, mask=None):
        self.calls += 1; out = super().forward(tokens, start_pos, cache, mask)
        return out * self.value if self.calls >= self.bad_from else out

def _cfg(out, **kw):
    return TrainConfig(**{**dict(model=dict(vocab_size=258), max_steps=20, warmup_steps=2, data_chars=30_000,
                                 stages=[[0, 128, 32]], ckpt_every=3, progress=False, out_dir=str(out)), **kw})

@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, value):
    torch.manual_seed(0)
    m = init_weights(Poisoned(ModelArgs.tiny(vocab_size=258), bad_from=8, value=value))
    with pytest.raises(NonFiniteLoss, match=r"at step 7\b.*last good checkpoint is .*latest\.pt"): train(_cfg(tmp_path), model=m)
    c = load_train_state(tmp_path / "ckpt/latest.pt")
    assert c["state"]["step"] == 6                                   # written after step 5; step 7's state never saved
    assert all(torch.isfinite(v).all() for v in c["model"].values())
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(7))                # steps 0..6 logged, nothing after

def test_nan_before_any_checkpoint_says_so(tmp_path):
    m = init_weights(Poisoned(ModelArgs.tiny(vocab_size=258), bad_from=1))
    with pytest.raises(NonFiniteLoss, match="at step 0.*none was written yet"): train(_cfg(tmp_path), model=m)

def test_cli_exit_status_and_message_on_divergence(tmp_path):
    cfg = tmp_path / "nan.toml"
    cfg.write_text('lr = 1e30\nwarmup_steps = 0\nmax_steps = 6\nmin_lr = 0.0\ndata_chars = 30000\nckpt_every = 1\n'
                   'progress = false\n[model]\nvocab_size = 258\n')
    r = subprocess.run([sys.executable, "-c", "import sys; from llama3_nb.cli import main; "
                        "sys.exit(main(['train'] + sys.argv[1:]))", str(cfg), "--out-dir", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-2000:]
    assert re.search(r"the (loss|gradient norm) is (nan|inf) at step|the weights are not finite", r.stderr), r.stderr
    assert (tmp_path / "o/ckpt/latest.pt").is_file() and "the last good checkpoint is" in r.stderr
    c = load_train_state(tmp_path / "o/ckpt/latest.pt")                # the guard checks grads and weights, not only the loss
    assert all(torch.isfinite(v).all() for v in c["model"].values())
