"""joblib (2 jobs) vs Hydra's basic launcher on the same CPU-bound study of 8 small runs (make bench).
Prints the wall-clock ratio measured in this one run."""
import subprocess
import sys
import time

# Small MLPs: too small for torch's intra-op threads to help, the case where parallel jobs pay off.
RUNS = ["-m", "model=mlp", "model.width=32,40,48,56,64,72,80,88", "trainer.max_steps=10000", "logger=none"]


def wall(tmp_path, *launcher) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", *RUNS, *launcher, f"out_dir={tmp_path}"], check=True,
                   capture_output=True)
    return time.perf_counter() - t


def test_joblib_vs_basic_launcher(tmp_path):
    basic = wall(tmp_path / "basic")
    joblib = wall(tmp_path / "joblib", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    print(f"\n8 MLP runs (width 32..88, 10000 steps): basic launcher {basic:.1f} s, joblib n_jobs=2 "
          f"{joblib:.1f} s, speed-up {basic / joblib:.2f}x")
