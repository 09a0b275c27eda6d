"""Property and edge-case tests of the FP8 stage: row-wise quantization, the ub cap, bad inputs, the FP8 linear."""
import copy
import math
import pytest
import torch
from hypothesis import given, settings, strategies as st
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.fp8 import (FP8_FORMATS, FP8Linear, decode_fp8, dequantize, fp8_linear, fp8_values, quantize_model_fp8,
                           quantize_rowwise, quantize_tensorwise, bench_fp8_gpu)

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2

@pytest.mark.parametrize("dtype", [E4M3, E5M2])
def test_decode_matches_torch_for_all_codes(dtype):
    ours = fp8_values(dtype)
    theirs = torch.arange(256, dtype=torch.uint8).view(dtype).double()
    assert torch.equal(ours.isnan(), theirs.isnan())
    assert torch.equal(ours[~ours.isnan()], theirs[~theirs.isnan()])
    assert decode_fp8(0x7E, E4M3) == 448.0 and math.isnan(decode_fp8(0x7F, E4M3))
    assert decode_fp8(0x7B, E5M2) == 57344.0 and decode_fp8(0x7C, E5M2) == math.inf

@st.composite
def rows_within_range(draw):
    "A (R, C) float32 tensor whose rows have maxima between 1e-3 and ub, each row with its own magnitude."
    R, C = draw(st.integers(1, 6)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    mags = torch.tensor(draw(st.lists(st.floats(1e-3, 1000.0), min_size=R, max_size=R)))
    x = torch.randn(R, C, generator=torch.Generator().manual_seed(seed))
    return x / x.abs().amax(1, keepdim=True).clamp(min=1e-30) * mags[:, None]

@settings(max_examples=200, deadline=None)
@given(rows_within_range(), st.sampled_from([E4M3, E5M2]))
def test_roundtrip_error_bounded_by_format_precision(x, dtype):
    "Normal values are off by at most half a step (2^-(M+1) relative); subnormals by half the subnormal step."
    E, M, b = FP8_FORMATS[dtype]
    q, inv = quantize_rowwise(x, ub=1200.0, dtype=dtype)
    assert q.dtype == dtype and inv.shape == (x.shape[0], 1)
    err = (dequantize(q, inv) - x).abs()
    half_sub = 2.0 ** (1 - b - M) / 2 * inv                              # half the subnormal step, in x's units
    bound = torch.maximum(2.0 ** -(M + 1) * x.abs(), half_sub)
    assert (err <= bound * (1 + 1e-5) + 1e-30).all()                     # 1e-5: fp32 arithmetic in scale and product
    fmax = torch.finfo(dtype).max                                       # each row's max maps onto the format's max
    assert torch.equal(q.float().abs().amax(1), torch.full((x.shape[0],), fmax))

@settings(max_examples=100, deadline=None)
@given(st.floats(1.0, 1e6), st.floats(1e-3, 1e4), st.integers(0, 1000))
def test_ub_cap(row_max, ub, seed):
    "Rows with max above ub are scaled as if their max were ub: |values| >= ub come back as exactly +-ub."
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(seed))
    x = x / x.abs().amax(1, keepdim=True) * row_max
    q, inv = quantize_rowwise(x, ub=ub)
    torch.testing.assert_close(inv, torch.full((3, 1), min(row_max, ub) / 448.0), rtol=1e-6, atol=0)
    xd = dequantize(q, inv)
    assert (xd.abs() <= min(row_max, ub) * (1 + 1e-6)).all()
    if row_max > ub:
        big = x.abs() >= ub
        torch.testing.assert_close(xd[big], x[big].sign() * 448.0 * inv.expand_as(x)[big], rtol=0, atol=0)
    q2, inv2 = quantize_rowwise(x, ub=None)                              # no cap: scale follows the row max
    torch.testing.assert_close(inv2, torch.full((3, 1), row_max / 448.0), rtol=1e-6, atol=0)

def test_zero_and_constant_rows():
    x = torch.stack([torch.zeros(8), torch.full((8,), 3.25), torch.full((8,), -1e-4), torch.full((8,), 5000.0)])
    q, inv = quantize_rowwise(x)
    xd = dequantize(q, inv)
    assert torch.isfinite(inv).all() and inv[0, 0] > 0                   # 1e-12 floor: no division by zero
    assert torch.equal(xd[0], torch.zeros(8))
    torch.testing.assert_close(xd[1:3], x[1:3], rtol=1e-6, atol=0)      # a constant row maps to +-448 exactly
    torch.testing.assert_close(xd[3], torch.full((8,), 1200.0))         # above ub: clipped to ub
    qt, invt = quantize_tensorwise(torch.zeros(2, 4))
    assert torch.equal(dequantize(qt, invt), torch.zeros(2, 4))

@pytest.mark.parametrize("call, err, msg", [
    (lambda: quantize_rowwise(torch.randn(8)), ValueError, "2-D"),
    (lambda: quantize_rowwise(torch.randn(2, 3, 4)), ValueError, "2-D"),
    (lambda: quantize_rowwise(torch.randn(2, 4), ub=0.0), ValueError, "ub must be > 0"),
    (lambda: quantize_rowwise(torch.randn(2, 4), ub=-5.0), ValueError, "ub must be > 0"),
    (lambda: quantize_rowwise(torch.randint(0, 5, (2, 4))), TypeError, "float32/bfloat16"),
    (lambda: quantize_rowwise(torch.randn(2, 4).to(E4M3)), TypeError, "float32/bfloat16"),
    (lambda: quantize_rowwise(torch.randn(2, 4), dtype=torch.float16), TypeError, "float8_e4m3fn"),
    (lambda: quantize_tensorwise(torch.randn(3), ub=1.0), ValueError, "2-D"),
    (lambda: FP8Linear(torch.nn.Linear(4, 4, bias=True)), ValueError, "bias-free"),
])
def test_bad_inputs_give_clear_errors(call, err, msg):
    with pytest.raises(err, match=msg): call()

def test_bench_refuses_without_cuda():
    if torch.cuda.is_available(): pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"): bench_fp8_gpu()

@pytest.mark.parametrize("rowwise", [True, False])
def test_fp8_linear_scaled_mm_matches_dequantize_oracle(rowwise):
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(2, 5, 48, generator=g), torch.randn(32, 48, generator=g) * 0.1
    wq, winv = (quantize_rowwise if rowwise else quantize_tensorwise)(w, ub=None)
    y = fp8_linear(x, wq, winv, rowwise=rowwise, out_dtype=torch.float32)
    y_ref = fp8_linear(x, wq, winv, rowwise=rowwise, out_dtype=torch.float32, scaled_mm=False)
    assert y.shape == (2, 5, 32)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    rel = (y - x @ w.T).norm() / (x @ w.T).norm()
    assert rel < 2 ** -3                                                # two e4m3 roundings: a few % at most

def test_quantize_model_keeps_attention_and_first_last_layers():
    torch.manual_seed(0)
    m = init_weights(Transformer(ModelArgs.tiny(n_layers=4)))
    q = quantize_model_fp8(copy.deepcopy(m))
    fp8 = [[isinstance(getattr(b.feed_forward, k), FP8Linear) for k in ("w1", "w2", "w3")] for b in q.layers]
    assert fp8 == [[False] * 3, [True] * 3, [True] * 3, [False] * 3]
    assert not any(isinstance(mod, FP8Linear) for b in q.layers for mod in b.attention.modules())
    assert all(all(r) for r in [[isinstance(getattr(b.feed_forward, k), FP8Linear) for k in ("w1", "w2", "w3")]
                                for b in quantize_model_fp8(copy.deepcopy(m), skip_first_last=False).layers])
    tok = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad(): a, b = m(tok), q(tok)
    assert a.shape == b.shape and torch.isfinite(b).all() and not torch.equal(a, b)
