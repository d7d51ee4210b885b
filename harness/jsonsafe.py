"""The one JSON-cleaning helper (torch-free): result.json, fits.json, forecast.json and cost plans use it."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def json_ready(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to null (JSON has neither), paths and keys to strings."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj
