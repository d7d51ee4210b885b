"""The report sections a sweep file may name under `analyses:`, declared here so that a study checks them at
its start without importing the analysis package (harness never imports analysis: analysis sits above it).
`analysis/registry.py` implements each name; tests/test_analysis_registry.py keeps the two lists equal."""
from __future__ import annotations

ANALYSIS_NAMES = ("power_laws_params", "power_laws_tokens", "epochs", "chinchilla", "isoflop", "frontier", "lr_batch",
                  "throughput_batch", "devices", "throughput_params", "attention", "architectures",
                  "lstm_vs_transformer", "dp")
