"""Harness vs a bare hand-written loop (same model, data, batch, threads, optimizer), and the fixed per-run
overhead of a fresh `harness` process (make bench). Prints the measured figures; asserts nothing about speed."""
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from harness import compose, run
from harness.build import build_run

STEPS = 40
OVERRIDES = ["model=transformer", "model.d_model=128", "model.n_layers=4", "model.n_heads=4", "data.seq_len=128",
             "trainer.batch_size=32", f"trainer.max_steps={STEPS}", "optim.schedule=constant",
             "optim.warmup_steps=0", "trainer.grad_clip=0", "trainer.eval_samples=32", "threads=2"]


def bare_loop(cfg) -> float:
    """The loop a person writes by hand: sample, forward, loss, backward, step. Returns seconds for STEPS."""
    data, model, _ = build_run(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
    sampler = data.sampler(0)
    t = time.perf_counter()
    for _ in range(STEPS):
        x, y = sampler.next(32)
        loss = F.cross_entropy(model(x).reshape(-1, data.spec.n_outputs), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    return time.perf_counter() - t


def test_harness_throughput_vs_bare_loop(tmp_path):
    torch.set_num_threads(2)
    cfg = compose(OVERRIDES + [f"out_dir={tmp_path}", "force=true"])
    bare_loop(cfg)  # warm-up: first-use costs (optimizer import, allocator) hit neither side
    ratios = []
    for _ in range(3):
        bare = bare_loop(cfg)
        ours = run(cfg).metrics["wall_s"]  # whole train(): every step, logging, history, final validation
        ratios.append(bare / ours)
    print(f"\nharness/bare throughput ratio (transformer d128 L4 T128 b32, {STEPS} steps, 2 threads, wandb offline): "
          f"median {statistics.median(ratios):.3f}, runs {[round(r, 3) for r in ratios]}")


def test_fresh_process_overhead(tmp_path):
    t = time.perf_counter()
    # The floor any fresh PyTorch training process pays: imports, and torch.optim's first optimizer
    # (it imports torch._dynamo, ~1.5 s here).
    subprocess.run([sys.executable, "-c", "import torch, hydra, wandb, pandas; "
                    "torch.optim.AdamW(torch.nn.Linear(2, 2).parameters())"], check=True)
    floor = time.perf_counter() - t
    overheads = []
    for i in range(3):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness", *OVERRIDES, f"out_dir={tmp_path}", f"seed={i}"],
                       check=True, capture_output=True)
        total = time.perf_counter() - t
        [result] = [p for p in Path(tmp_path).rglob("result.json") if json.loads(p.read_text())["config"]["seed"] == i]
        m = json.loads(result.read_text())["metrics"]
        steady = m["step_time_s"] * m["steps"]  # what the steps would cost at their steady rate
        overheads.append(total - steady)
    print(f"\nfloor (import torch, hydra, wandb, pandas + first AdamW): {floor:.2f} s; per-run overhead of a fresh `harness` "
          f"process (total - steps x median step time): median {statistics.median(overheads):.2f} s, "
          f"runs {[round(o, 2) for o in overheads]}")
