"""The paged KV cache: allocator books under random workloads, bad inputs, and agreement with dense `generate`."""
import hashlib
import pytest
import torch
from hypothesis import event, given, settings, strategies as st
from llama3_nb.config import ModelArgs
from llama3_nb.model import Transformer, init_weights
from llama3_nb.generation import generate
from llama3_nb.block_manager import BlockAllocator, OutOfBlocks, check_invariants
from llama3_nb.paged_kv import PagedKVCache
from llama3_nb.paged import PagedEngine, paged_generate

ARGS = ModelArgs(dim=16, n_layers=2, n_heads=2, n_kv_heads=1, vocab_size=64, multiple_of=8, max_seq_len=64)

def kv_of(prefix) -> float:
    "A fake key for the last token of `prefix`: a function of the whole prefix, as a real model's K/V are."
    return float(int.from_bytes(hashlib.sha256(str(list(prefix)).encode()).digest()[:3], "little"))   # exact in fp32

ops = st.lists(st.tuples(st.sampled_from(["new", "append", "fork", "free"]), st.integers(0, 10**6),
                         st.lists(st.integers(0, 1), min_size=1, max_size=9)), max_size=40)

@settings(max_examples=200, deadline=None)
@given(num_blocks=st.integers(1, 12), block_size=st.integers(1, 4), prefix_caching=st.booleans(), ops=ops)
def test_cache_books_and_contents_under_random_workloads(num_blocks, block_size, prefix_caching, ops):
    c = PagedKVCache(ARGS, num_blocks, block_size, prefix_caching=prefix_caching)
    seqs: dict[int, list[int]] = {}                # what each sequence holds, as the test believes
    nxt = 0
    for op, r, toks in ops:
        live = sorted(seqs)
        try:
            if op == "new":                            # a new prompt: attach cached prefix blocks, then write the rest
                c.add(nxt); n = c.match_prefix(nxt, toks); event(f"prefix hit: {n > 0}"); seqs[nxt] = toks[:n]; sids, new = [nxt], [toks[n:]]; nxt += 1
            elif op == "append" and live:              # a batch: several sequences grow by different amounts at once
                sids = live[r % len(live):][:3]; new = [toks[:1 + (r + i) % len(toks)] for i in range(len(sids))]
            elif op == "fork" and live:
                c.fork_seq(live[r % len(live)], nxt); seqs[nxt] = list(seqs[live[r % len(live)]]); nxt += 1; sids = []
            elif op == "free" and live:
                c.free_seq(live[r % len(live)]); del seqs[live[r % len(live)]]; sids = []
            else: sids = []
            if sids:
                shared = any(c.alloc.ref[b] > 1 for s in sids for b in c.tables[s][c.num_tokens(s) // block_size:])
                tok, start = c.prepare(sids, new); event(f"copy-on-write: {shared}")
                T, B = tok.shape[1], len(sids)
                k = torch.full((B, ARGS.n_kv_heads, T, ARGS.head_dim), -1.0)    # padding: -1 must never be stored
                for i, (s, x) in enumerate(zip(sids, new)):
                    for t in range(len(x)): k[i, :, t] = kv_of(seqs[s] + x[:t + 1])
                    seqs[s] = seqs[s] + list(x)
                for layer in range(ARGS.n_layers):
                    kk, vv = c.update(layer, k, -k, start)
                    for i, s in enumerate(sids):             # every sequence reads back exactly its own keys
                        want = torch.tensor([kv_of(seqs[s][:p + 1]) for p in range(len(seqs[s]))])
                        assert torch.equal(kk[i, 0, :len(want), 0], want) and torch.equal(vv[i, 0, :len(want), 0], -want)
        except OutOfBlocks: event("out of blocks")         # nothing was written: the books below must still hold
        for s in seqs:                                  # every live sequence's blocks still hold its own keys
            assert c.num_tokens(s) == len(seqs[s]) and len(c.tables[s]) >= -(-len(seqs[s]) // block_size)
            got = [float(c.k[-1, c.tables[s][p // block_size], p % block_size, 0, 0]) for p in range(len(seqs[s]))]
            assert got == [kv_of(seqs[s][:p + 1]) for p in range(len(seqs[s]))]
        check_invariants(c.alloc, c.tables.values())
    for s in list(seqs): c.free_seq(s)
    assert c.alloc.num_free == num_blocks and not any(c.alloc.ref)            # nothing leaked

@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["alloc", "fork", "free"]), st.integers(0, 100)), max_size=60))
def test_allocator_books(ops):
    a, tables = BlockAllocator(6), []
    for op, r in ops:
        if op == "alloc":
            try: tables.append([a.allocate()])
            except OutOfBlocks: assert a.num_free == 0
        elif op == "fork" and tables: tables.append(a.fork(tables[r % len(tables)]))
        elif op == "free" and tables:
            for b in tables.pop(r % len(tables)): a.free(b)
        check_invariants(a, tables)
        assert len(set(a.free_ids)) == a.num_free and all(a.ref[b] == 0 for b in a.free_ids)

@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return init_weights(Transformer(ModelArgs.tiny())).eval()

def test_bad_inputs(model):
    args = model.params
    with pytest.raises(ValueError, match="num_blocks must be >= 1"): PagedKVCache(args, 0)
    with pytest.raises(ValueError, match="num_blocks must be >= 1"): PagedEngine(model, 0)
    with pytest.raises(ValueError, match="block_size must be >= 1"): PagedKVCache(args, 4, block_size=0)
    with pytest.raises(ValueError, match="n must be >= 1"): paged_generate(model, [[1, 2]], 4, n=0)
    with pytest.raises(ValueError, match="n must be >= 1"): PagedEngine(model, 8).add_request([1, 2], 4, n=0)
    with pytest.raises(ValueError, match="exceeds max_seq_len"): paged_generate(model, [[1] * args.max_seq_len], 1)
    with pytest.raises(ValueError, match="exceeds max_seq_len"): PagedEngine(model, 64).add_request([1] * (args.max_seq_len + 1), 1)
    with pytest.raises(ValueError, match="need more than the 2 blocks"): PagedEngine(model, 2, 4).add_request([1] * 8, 4)
    with pytest.raises(ValueError, match="is empty"): paged_generate(model, [[]], 4)
    a = BlockAllocator(2); b = a.allocate(); a.free(b)
    with pytest.raises(ValueError, match="double free"): a.free(b)
    with pytest.raises(IndexError): a.free(5)
    with pytest.raises(RuntimeError, match="call prepare"): PagedKVCache(args, 2).update(0, torch.zeros(1, 2, 1, 16), torch.zeros(1, 2, 1, 16), 0)

@pytest.mark.parametrize("admission", ["reserve", "preempt"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_greedy_equals_generate(model, seed, admission):
    g = torch.Generator().manual_seed(seed)
    vocab = model.params.vocab_size
    system = torch.randint(0, vocab, (int(torch.randint(0, 20, (1,), generator=g)),), generator=g).tolist()
    prompts = [system + torch.randint(0, vocab, (int(torch.randint(1, 25, (1,), generator=g)),), generator=g).tolist() for _ in range(5)]
    new = int(torch.randint(1, 20, (1,), generator=g))
    dense = generate(model, prompts, new)
    bs = 1 + seed
    tight = max(-(-(len(p) + new) // bs) for p in prompts) + 1           # forces preemption
    for blocks, batch in [(None, 8), (tight, 5), (200, 2)]:              # ample; preempting; prefix-cache hits
        eng = PagedEngine(model, blocks or 400, bs, batch, admission=admission)
        for p in prompts: eng.add_request(p, new)
        while eng.waiting or eng.running:
            eng.step(); check_invariants(eng.cache.alloc, eng.cache.tables.values())
            if admission == "reserve": assert eng.sched.promised <= eng.cache.alloc.num_blocks
        out = eng.run()
        assert out.tokens == dense.tokens and out.finish_reason == dense.finish_reason
        assert max(abs(a - b) for x, y in zip(out.logprobs, dense.logprobs) for a, b in zip(x, y)) <= 1e-5
        assert eng.cache.alloc.num_free == eng.cache.alloc.num_blocks         # every block came back
        if admission == "reserve": assert eng.stats["preemptions"] == 0 and eng.sched.promised == 0
        elif blocks == tight: assert eng.stats["preemptions"] > 0
        if blocks == 200: assert eng.stats["prefix-cached tokens"] > 0 or len(system) < bs

def test_samples_share_the_prompt_and_match_dense_sampling(model):
    prompt = list(range(3, 40))
    out = paged_generate(model, [prompt], 12, n=4, temperature=0.9, top_p=0.95, seed=11, block_size=8, stop_tokens=[5])
    for j in range(4):
        d = generate(model, [prompt], 12, temperature=0.9, top_p=0.95, seed=11 + j, stop_tokens=[5])
        assert out.tokens[j] == d.tokens[0] and out.finish_reason[j] == d.finish_reason[0]
    eng = PagedEngine(model, 64, 8, 4)
    eng.add_request(prompt, 12, n=4, temperature=0.9, seed=11)
    eng.step()                                           # the prefill: one copy of the prompt for four samples
    tables = list(eng.cache.tables.values())
    assert len(tables) == 4 and all(t[:4] == tables[0][:4] for t in tables)
    assert all(eng.cache.alloc.ref[b] == 4 for b in tables[0][:4])

@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), admission=st.sampled_from(["reserve", "preempt"]), bs=st.integers(1, 6), extra=st.integers(0, 6))
def test_samples_do_not_depend_on_scheduling(model, seed, admission, bs, extra):
    "Sampled requests (n samples, stop tokens) under a tight budget equal the same requests with ample blocks; reservation never preempts."
    g = torch.Generator().manual_seed(seed); vocab = model.params.vocab_size
    reqs = [(torch.randint(0, vocab, (int(torch.randint(1, 12, (1,), generator=g)),), generator=g).tolist(),
             int(torch.randint(1, 10, (1,), generator=g)), int(torch.randint(1, 4, (1,), generator=g))) for _ in range(4)]
    stops = torch.randint(0, vocab, (8,), generator=g).tolist()
    need = max(n * -(-(len(p) + m) // bs) for p, m, n in reqs)          # the largest request alone, every sample its own blocks
    outs = []
    for blocks in (need + extra, 10_000):
        eng = PagedEngine(model, blocks, bs, 4, admission=admission)
        for i, (p, m, n) in enumerate(reqs): eng.add_request(p, m, n, temperature=1.0, seed=seed + 10 * i, stop_tokens=stops)
        while eng.waiting or eng.running:
            eng.step(); check_invariants(eng.cache.alloc, eng.cache.tables.values())
        outs.append(eng.run()); assert eng.cache.alloc.num_free == blocks
        if admission == "reserve": assert eng.stats["preemptions"] == 0
        if blocks < 10_000: event(f"{admission}: preempted {eng.stats['preemptions'] > 0}")
    assert outs[0].tokens == outs[1].tokens and outs[0].finish_reason == outs[1].finish_reason

def test_admission_is_checked(model):
    with pytest.raises(ValueError, match="admission must be one of"): PagedEngine(model, 8, admission="fifo")
    with pytest.raises(ValueError, match="x 3 samples"): PagedEngine(model, 4, 4, admission="reserve").add_request([1] * 4, 4, n=3)
    PagedEngine(model, 4, 4, admission="preempt").add_request([1] * 4, 4, n=3)     # preemption lets samples share: accepted
