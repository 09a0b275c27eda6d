"Parallelism: the mesh arithmetic as properties, the launcher's failure modes, and equality runs larger than the lesson's."
import math, os, time
import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings, strategies as st
from llama3_nb.pretraining_data import doc_mask
from llama3_nb.parallel import (MESH_DIMS, TABLE4, build, causal_pairs, coords_rank, cp_positions, cp_worker, dp_worker,
                                fsdp_tp_worker, gpipe_bubble, groups, ipp_worker, layer_split, lm_loss, max_diff,
                                pipeline_orders, pp_worker, rank_coords, reference, run_world, schedule_bubble,
                                table4_derived, tiny_setup, tp_worker)

sizes_st = st.fixed_dictionaries({d: st.integers(1, 4) for d in MESH_DIMS})

# ---- the mesh ------------------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(sizes_st, st.data())
def test_coords_rank_bijection(sizes, data):
    n = math.prod(sizes.values())
    r = data.draw(st.integers(0, n - 1))
    c = rank_coords(r, sizes)
    assert all(0 <= c[d] < sizes[d] for d in MESH_DIMS)
    assert coords_rank(c, sizes) == r
    assert r == c["tp"] + sizes["tp"] * (c["cp"] + sizes["cp"] * (c["pp"] + sizes["pp"] * c["dp"]))   # TP innermost

@settings(max_examples=100, deadline=None)
@given(sizes_st, st.sampled_from(MESH_DIMS))
def test_groups_partition_the_ranks(sizes, dim):
    gs = groups(sizes, dim)
    n = math.prod(sizes.values())
    assert sorted(r for g in gs for r in g) == list(range(n))
    assert len(gs) == n // sizes[dim] and all(len(g) == sizes[dim] for g in gs)
    for g in gs:                                         # members differ in `dim` only
        cs = [rank_coords(r, sizes) for r in g]
        assert [c[dim] for c in cs] == list(range(sizes[dim]))
        assert all({k: v for k, v in c.items() if k != dim} == {k: v for k, v in cs[0].items() if k != dim} for c in cs)

def test_mesh_errors():
    s = dict(tp=2, cp=1, pp=2, dp=3)
    with pytest.raises(ValueError, match="outside"): rank_coords(12, s)
    with pytest.raises(ValueError, match="outside"): rank_coords(-1, s)
    with pytest.raises(ValueError, match="outside size"): coords_rank(dict(tp=2, cp=0, pp=0, dp=0), s)

def test_table4_rows():
    "Table 4 (§3.3.2): GPUs = TP·CP·PP·DP, 16,777,216 tokens per step, MFU = TFLOPs/989 within the table's rounding."
    for row in TABLE4:
        d = table4_derived(row)
        assert d["gpus"] == row["gpus"] and d["tokens"] == 16_777_216
        assert abs(100 * d["mfu"] - row["mfu"]) < 1.0

@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.booleans())
def test_cp_split_is_a_partition_and_balanced(cp, chunk, balanced):
    T = 2 * cp * chunk
    parts = [cp_positions(T, cp, r, balanced) for r in range(cp)]
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(T))
    work = [causal_pairs(p) for p in parts]
    if balanced: assert len(set(work)) == 1
    elif cp > 1: assert max(work) > min(work)

def test_cp_split_rejects_ragged_length():
    with pytest.raises(ValueError, match="not divisible"): cp_positions(10, 2, 0)

@settings(max_examples=50, deadline=None)
@given(st.integers(1, 16), st.integers(1, 64))
def test_gpipe_bubble_formula(pp, m):
    "The report's bubble ratio (PP−1)/(V·M) with V = 1, from a simulated GPipe schedule."
    assert gpipe_bubble(pp, m) == pytest.approx((pp - 1) / m, abs=1e-12)

@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(1, 3), st.integers(1, 4))
def test_interleaved_bubble_formula(pp, v, rounds):
    "PyTorch's interleaved 1F1B orders, executed: (p−1)/(v·m) whenever m ≥ p; GPipe's orders give the GPipe simulation."
    m = pp * rounds
    assert schedule_bubble(pipeline_orders("ScheduleInterleaved1F1B", pp, m, v)) == pytest.approx((pp - 1) / (v * m), abs=1e-12)
    assert schedule_bubble(pipeline_orders("ScheduleGPipe", pp, m)) == pytest.approx(gpipe_bubble(pp, m), abs=1e-12)

def test_schedule_bubble_detects_a_deadlock():
    orders = {0: [("F", 0, 0), ("B", 0, 0)], 1: [("B", 1, 0), ("F", 1, 0)]}      # rank 1 wants the backward first
    with pytest.raises(RuntimeError, match="deadlock"): schedule_bubble(orders)

@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(1, 12), st.booleans())
def test_layer_split_partitions_the_layers(per, n_stages, short):
    n_layers = per * n_stages - (2 if short and n_stages > 1 else 0)
    if n_layers < 1: return
    b = layer_split(n_layers, n_stages, short)
    assert len(b) == n_stages and b[0][0] == 0 and b[-1][1] == n_layers
    assert all(hi == lo2 for (_, hi), (lo2, _) in zip(b, b[1:]))
    sizes = [hi - lo for lo, hi in b]
    if short and n_stages > 1: assert sizes == [per - 1] + [per] * (n_stages - 2) + [per - 1]
    else: assert sizes == [per] * n_stages

# ---- the launcher -----------------------------------------------------------------------------------------------------
def _echo(rank, world, x): return dict(rank=rank, world=world, x=x, sum=_allreduce(rank))
def _allreduce(rank):
    t = torch.tensor([float(rank + 1)]); dist.all_reduce(t); return t.item()
def _raises(rank, world):
    if rank == 1: raise ValueError("rank one is broken")
    dist.barrier()                                        # rank 0 would wait for rank 1 forever
def _exits(rank, world):
    if rank == 0: os._exit(3)
    dist.barrier()
def _sleeps(rank, world): time.sleep(60)
def _dies_mid_collective(rank, world):
    t = torch.ones(1)
    for step in range(1000):
        if rank == 1 and step == 3: os._exit(1)            # between collectives: rank 0 is already inside the next one
        dist.all_reduce(t)

def test_run_world_returns_each_rank():
    res = run_world(_echo, 2, "hi")
    assert [r["rank"] for r in res] == [0, 1] and all(r["world"] == 2 and r["x"] == "hi" and r["sum"] == 3.0 for r in res)

def test_run_world_reports_a_worker_exception():
    # a RuntimeError, not a TimeoutError: the raise ends the world although rank 0 waits in a barrier
    with pytest.raises(RuntimeError, match="(?s)a worker of _raises failed.*ValueError: rank one is broken"): run_world(_raises, 2, timeout=60)

def test_run_world_reports_an_exit_code():
    with pytest.raises(RuntimeError, match="(?s)_exits failed.*exit code 3"): run_world(_exits, 2, timeout=60)

def test_run_world_ends_when_a_rank_dies_mid_collective():
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="a worker of _dies_mid_collective failed"): run_world(_dies_mid_collective, 2, timeout=60)
    assert time.monotonic() - t0 < 30                    # an error at once, not the 60 s timeout

def test_run_world_refuses_a_main_function():
    def f(rank, world): return rank
    f.__module__ = "__main__"                            # as a function defined in a notebook would be
    with pytest.raises(ValueError, match="importable"): run_world(f, 2)

def test_run_world_times_out():
    with pytest.raises(TimeoutError, match="still running after 5"): run_world(_sleeps, 2, backend=None, timeout=5)

# ---- equality runs --------------------------------------------------------------------------------------------------
def _scale(ref): return max(g.abs().max().item() for g in ref["grads"].values())

def test_fsdp_four_ranks_three_steps():
    args, sd, tokens = tiny_setup(seed=3, B=4, T=32)
    ref = reference(args, sd, tokens, steps=3)
    res = run_world(dp_worker, 4, args, sd, tokens, True, 3, timeout=240)
    for r in res:
        torch.testing.assert_close(r["losses"], ref["losses"], rtol=1e-5, atol=1e-6)
        assert max_diff(r["grads"], ref["grads"]) < 1e-6 * _scale(ref)
        assert max_diff(r["params"], ref["params"]) < 1e-5
        assert r["mem"]["params"] * 4 >= sum(p.numel() for p in sd.values())   # a quarter each, padded shards
    assert sum(r["mem"]["params"] for r in res) == sum(p.numel() for p in sd.values())

def test_tp_more_heads_and_layers():
    args, sd, tokens = tiny_setup(seed=4, B=2, T=24, n_heads=8, n_kv_heads=4, n_layers=3)
    ref = reference(args, sd, tokens, steps=3)
    res = run_world(tp_worker, 2, args, sd, tokens, 3)
    logits = build(args, sd)(tokens[:, :-1]).detach()
    for r in res:
        torch.testing.assert_close(r["logits"], logits, rtol=1e-5, atol=1e-6)
        assert max_diff(r["grads"], ref["grads"]) < 1e-6 * _scale(ref)
        assert max_diff(r["params"], ref["params"]) < 1e-5
        assert r["comm"]["prepared inputs"] == {"all_reduce": 4 * args.n_layers}
        assert r["shapes"]["attention.wk.weight"] == (2 * args.head_dim, args.dim)        # 2 of 4 KV heads

@pytest.mark.parametrize("world, bos, balanced", [(2, None, True), (4, None, True), (4, 0, True), (2, 0, False)])
def test_cp_matches_single_process(world, bos, balanced):
    args, sd, tokens = tiny_setup(seed=5, B=2, T=64)
    if bos is not None: tokens[:, [0, 9, 30, 41]] = bos
    model = build(args, sd)
    logits1 = model(tokens[:, :-1], mask=None if bos is None else doc_mask(tokens[:, :-1], bos))
    loss1 = lm_loss(logits1, tokens[:, 1:]); loss1.backward()
    g1 = {n: p.grad for n, p in model.named_parameters()}
    res = run_world(cp_worker, world, args, sd, tokens, bos, balanced, timeout=240)
    logits = torch.empty_like(logits1)
    for r in res: logits[:, r["pos"]] = r["logits"]
    torch.testing.assert_close(logits, logits1.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res[0]["loss"], loss1.detach(), rtol=1e-5, atol=1e-6)
    assert max_diff(res[0]["grads"], g1) < 1e-6 * max(g.abs().max().item() for g in g1.values())
    if bos is not None:                                   # the document mask mattered
        assert (logits1 - model(tokens[:, :-1])).abs().max() > 1e-3

def test_pp_four_layers_four_microbatches():
    args, sd, tokens = tiny_setup(seed=6, B=8, T=16, n_layers=4)
    ref = reference(args, sd, tokens, steps=1)
    res = run_world(pp_worker, 2, args, sd, tokens, 4)
    grads = {**res[0]["grads"], **res[1]["grads"]}
    assert not set(res[0]["grads"]) & set(res[1]["grads"])
    torch.testing.assert_close(res[1]["loss"], ref["losses"][0], rtol=1e-5, atol=1e-6)
    assert max_diff(grads, ref["grads"]) < 1e-6 * _scale(ref)

def test_fsdp_tp_2d_three_layers_three_steps():
    "FSDP × TP on a (dp=2, tp=2) mesh with the report's reshard_after_forward=False: equal to one process, collectives counted."
    args, sd, tokens = tiny_setup(seed=7, B=4, T=24, n_layers=3)
    ref = reference(args, sd, tokens, steps=3)
    res = run_world(fsdp_tp_worker, 4, args, sd, tokens, 3, 2, (False,), timeout=240)
    U = args.n_layers + 1
    for r in (x[False] for x in res):
        torch.testing.assert_close(r["losses"], ref["losses"], rtol=1e-5, atol=1e-6)
        assert max_diff(r["grads"], ref["grads"]) < 1e-6 * _scale(ref)
        assert max_diff(r["params"], ref["params"]) < 1e-5
        assert r["comm"] == {"_allgather_base_": U, "_reduce_scatter_base_": U, "all_reduce": 4 * args.n_layers}
        assert r["held_bytes"] == 2 * r["rest_bytes"]     # unsharded over DP = 2 between forward and backward

@pytest.mark.parametrize("n_layers, v, short, n_micro", [(4, 2, False, 3), (4, 3, True, 4), (6, 2, True, 6)])
def test_interleaved_matches_single_process(n_layers, v, short, n_micro):
    "Interleaved 1F1B on 2 ranks: (4, 3, True) gives 6 stages of 0-1-1-1-1-0 layers, the ends only embeddings / head."
    args, sd, tokens = tiny_setup(seed=8, B=12, T=16, n_layers=n_layers)
    ref = reference(args, sd, tokens, steps=1)
    res = run_world(ipp_worker, 2, args, sd, tokens, n_micro, v, short)
    grads = {**res[0]["grads"], **res[1]["grads"]}
    assert not set(res[0]["grads"]) & set(res[1]["grads"]) and set(grads) == set(ref["grads"])
    torch.testing.assert_close(res[1]["loss"], ref["losses"][0], rtol=1e-5, atol=1e-6)
    assert max_diff(grads, ref["grads"]) < 1e-6 * _scale(ref)
