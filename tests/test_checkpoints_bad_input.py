"""Checkpoint loading on bad or unusual input: every failure names what is wrong and where."""
import json
import pytest, torch
from safetensors.torch import save_file, load_file
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.checkpoints import (save_meta_checkpoint, load_meta_checkpoint, save_hf_checkpoint, load_hf_checkpoint,
                                   hf_config_to_args, args_to_hf_config)

@pytest.fixture
def model():
    torch.manual_seed(0)
    return init_weights(Transformer(ModelArgs.tiny()))

def logits(m, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad(): return m(torch.randint(0, m.params.vocab_size, (1, 20)))

def test_params_json_not_json(tmp_path, model):
    save_meta_checkpoint(model, tmp_path)
    (tmp_path / "params.json").write_text("{dim: 64")
    with pytest.raises(ValueError, match="params.json is not valid JSON"): load_meta_checkpoint(tmp_path)

def test_no_consolidated_file(tmp_path, model):
    save_meta_checkpoint(model, tmp_path)
    (tmp_path / "consolidated.00.pth").unlink()
    with pytest.raises(FileNotFoundError, match="no consolidated"): load_meta_checkpoint(tmp_path)

def test_missing_and_unexpected_keys_are_listed(tmp_path, model):
    save_meta_checkpoint(model, tmp_path)
    sd = torch.load(tmp_path / "consolidated.00.pth", weights_only=True)
    sd.pop("layers.1.feed_forward.w3.weight"); sd["layers.1.feed_forward.bias"] = torch.zeros(3)
    torch.save(sd, tmp_path / "consolidated.00.pth")
    with pytest.raises(ValueError) as e: load_meta_checkpoint(tmp_path)
    assert "missing keys (1): ['layers.1.feed_forward.w3.weight']" in str(e.value)
    assert "unexpected keys (1): ['layers.1.feed_forward.bias']" in str(e.value)

@pytest.mark.parametrize("n", [2, 4])
def test_meta_shards_merge(tmp_path, model, n):
    save_meta_checkpoint(model, tmp_path, n_shards=n)
    shard = torch.load(tmp_path / "consolidated.00.pth", weights_only=True)
    assert shard["layers.0.attention.wo.weight"].shape[1] == 64 // n      # row-parallel: cut along columns
    assert shard["layers.0.attention.wq.weight"].shape[0] == 64 // n      # column-parallel: cut along rows
    assert torch.equal(logits(load_meta_checkpoint(tmp_path)), logits(model))

def test_dtype_argument(tmp_path, model):
    save_meta_checkpoint(model, tmp_path)
    m = load_meta_checkpoint(tmp_path, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in m.parameters())
    assert torch.allclose(logits(m), logits(model), atol=0.05)

def test_tied_checkpoint_with_different_output_is_refused(tmp_path):
    m = init_weights(Transformer(ModelArgs.tiny(tie_word_embeddings=True)))
    save_meta_checkpoint(m, tmp_path)
    sd = torch.load(tmp_path / "consolidated.00.pth", weights_only=True)
    sd["output.weight"] = sd["output.weight"] + 1
    torch.save(sd, tmp_path / "consolidated.00.pth")
    with pytest.raises(ValueError, match="output.weight differs"): load_meta_checkpoint(tmp_path)

def test_hf_sharded_index(tmp_path, model):
    save_hf_checkpoint(model, tmp_path / "one")
    sd = load_file(tmp_path / "one/model.safetensors")
    keys = sorted(sd); half = len(keys) // 2
    out = tmp_path / "sharded"; out.mkdir()
    (out / "config.json").write_text((tmp_path / "one/config.json").read_text())
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    save_file({k: sd[k] for k in keys[:half]}, out / names[0]); save_file({k: sd[k] for k in keys[half:]}, out / names[1])
    (out / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {k: names[i >= half] for i, k in enumerate(keys)}}))
    assert torch.equal(logits(load_hf_checkpoint(out)), logits(model))
    (out / names[1]).unlink()
    with pytest.raises(FileNotFoundError, match="00002-of-00002"): load_hf_checkpoint(out)

def test_hf_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"): load_hf_checkpoint(tmp_path)

def test_hf_config_unsupported(tmp_path):
    cfg = args_to_hf_config(ModelArgs.tiny())
    with pytest.raises(ValueError, match="rope_type 'yarn'"):
        hf_config_to_args({**cfg, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
    with pytest.raises(ValueError, match="head_dim=32"): hf_config_to_args({**cfg, "head_dim": 32})
    with pytest.raises(ValueError, match="lacks 'intermediate_size'"):
        hf_config_to_args({k: v for k, v in cfg.items() if k != "intermediate_size"})
    assert hf_config_to_args({**cfg, "intermediate_size": 7}).ffn_hidden_dim == 7   # any width is expressible
