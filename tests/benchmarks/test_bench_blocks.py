"""Forward + backward time of each building block (make bench). Attention: manual vs SDPA over T = 128..2048,
with the fitted exponent of time vs T printed (manual attention's n x n matrix makes it approach 2)."""
import math

import pytest
import torch
from torch import nn

from harness.models.transformer import CausalSelfAttention

torch.manual_seed(0)
SEQ_LENS = [128, 256, 512, 1024, 2048]
ATTN_TIMES: dict[tuple[str, int], float] = {}


def fwd_bwd(module, x):
    def step():
        module(x).sum().backward()
    return step


@pytest.mark.parametrize("width", [256, 1024])
def test_linear(benchmark, width):
    layer, x = nn.Linear(width, width), torch.randn(256, width, requires_grad=True)
    benchmark(fwd_bwd(layer, x))


@pytest.mark.parametrize("channels", [16, 64])
def test_conv(benchmark, channels):
    layer, x = nn.Conv2d(channels, channels, 3, padding=1), torch.randn(16, channels, 32, 32, requires_grad=True)
    benchmark(fwd_bwd(layer, x))


@pytest.mark.parametrize("seq_len", [32, 128, 512])
def test_lstm(benchmark, seq_len):
    layer, x = nn.LSTM(128, 128, batch_first=True), torch.randn(8, seq_len, 128, requires_grad=True)
    benchmark(lambda: layer(x)[0].sum().backward())


@pytest.mark.parametrize("impl", ["manual", "sdpa"])
@pytest.mark.parametrize("seq_len", SEQ_LENS)
def test_attention(benchmark, impl, seq_len):
    """Batch 1, 4 heads of 64 (d_model 256), causal."""
    layer, x = CausalSelfAttention(256, 4, impl), torch.randn(1, seq_len, 256, requires_grad=True)
    benchmark.pedantic(fwd_bwd(layer, x), rounds=5 if seq_len >= 1024 else 10, warmup_rounds=1)
    ATTN_TIMES[(impl, seq_len)] = benchmark.stats.stats.median


def test_attention_growth_exponent():
    """Least-squares slope of log(time) vs log(T) over T >= 512 (run after the attention benchmarks)."""
    for impl in ("manual", "sdpa"):
        pts = [(math.log(n), math.log(ATTN_TIMES[(impl, n)])) for n in SEQ_LENS if n >= 512 and (impl, n) in ATTN_TIMES]
        if len(pts) < 2:
            pytest.skip("attention benchmarks did not run (use make bench)")
        mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
        slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
        print(f"\nattention {impl}: time ~ T^{slope:.2f} over T=512..2048; "
              + ", ".join(f"T={n}: {ATTN_TIMES[(impl, n)] * 1e3:.1f} ms" for n in SEQ_LENS if (impl, n) in ATTN_TIMES))
    manual = [ATTN_TIMES[("manual", n)] for n in (1024, 2048)]
    assert manual[1] / manual[0] > 2.5, "manual attention should grow faster than linearly in T"
