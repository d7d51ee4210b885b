"""joblib (2 jobs) vs Hydra's basic launcher on the same CPU-bound study of 8 small runs (make bench).
Prints the wall-clock ratio measured in this one run."""
import subprocess
import sys
import time

RUNS = ["-m", "model=transformer", "model.target_params=3e4,4e4,5e4,6e4,7e4,8e4,9e4,1e5",
        "trainer.max_steps=60", "logger=none"]


def wall(tmp_path, *launcher) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", *RUNS, *launcher, f"out_dir={tmp_path}"], check=True,
                   capture_output=True)
    return time.perf_counter() - t


def test_joblib_vs_basic_launcher(tmp_path):
    basic = wall(tmp_path / "basic")
    joblib = wall(tmp_path / "joblib", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    print(f"\n8 transformer runs (3e4..1e5 params, 60 steps): basic launcher {basic:.1f} s, joblib n_jobs=2 "
          f"{joblib:.1f} s, speed-up {basic / joblib:.2f}x")
