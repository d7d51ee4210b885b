"""The one GPU table: datasheet peak FLOP/s by precision and memory per GPU. Torch-free, so the analysis
package (harness-cost) and the harness's MFU (harness.metrics) read the same figures.

Peaks are dense (no structured sparsity), from NVIDIA's A100 and H100 datasheets; the H200 has the H100
SXM's compute. `fp32` is the non-tensor-core rate (PyTorch leaves TF32 off for matmuls by default);
`fp16` equals `bf16`. Memory is the datasheet capacity: the 40/80 GB parts hold 40/80 GiB of HBM, the
H200 141 GB (10^9 bytes, as NVIDIA states it); a process can allocate a little less (about 78 GiB of an
H100's 80). Memory is bytes here and printed in GiB (`harness.memory.format_bytes`).
"""
from __future__ import annotations

GIB = 2 ** 30

# FLOP/s, dense. Keys are matched against device names such as "NVIDIA H100 80GB HBM3" (see gpu_key).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "A100": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12},
    "A100 40GB": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12},
    "H100 PCIe": {"fp32": 51e12, "tf32": 378e12, "bf16": 756e12, "fp16": 756e12, "fp8": 1513e12},
    "H100": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12, "fp8": 1978.9e12},
    "H200": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12, "fp8": 1978.9e12},
}
MEMORY_BYTES: dict[str, int] = {
    "A100": 80 * GIB,
    "A100 40GB": 40 * GIB,
    "H100 PCIe": 80 * GIB,
    "H100": 80 * GIB,
    "H200": 141 * 10 ** 9,
}
GPUS = tuple(PEAK_FLOPS)


def gpu_key(device_name: str) -> str | None:
    """The table's key for a device name ('NVIDIA H100 80GB HBM3' -> 'H100'), or None if unknown.

    Longer keys are tried first so 'H100 PCIe' and 'A100 40GB' win over 'H100' and 'A100'; matching is
    case-insensitive on the whitespace-separated parts of the key.
    """
    name = device_name.lower()
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if all(part.lower() in name for part in key.split()):
            return key
    return None


def gpu_peak(device_name: str, precision: str) -> float | None:
    """Datasheet peak FLOP/s of a GPU at `precision` (fp32, tf32, bf16, fp16, fp8), or None if unknown."""
    key = gpu_key(device_name)
    return PEAK_FLOPS[key].get(precision) if key else None


def gpu_memory(device_name: str) -> int | None:
    """Datasheet memory of one GPU in bytes, or None if unknown."""
    key = gpu_key(device_name)
    return MEMORY_BYTES[key] if key else None
