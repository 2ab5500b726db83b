"""Strict JSON for every file scaletrain writes: NaN and infinities are not JSON (strict parsers and W&B's API refuse
them), so a non-finite number is written as null, and the record says which and why in ``nonfinite``."""

from __future__ import annotations

import json
import math
from typing import Any

NONFINITE = "nonfinite"  # {"final_loss": "nan"}: the fields written as null because their value was not finite


def _clean(value: Any, path: str, found: dict[str, str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found[path] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return None
    if isinstance(value, dict):
        return {k: _clean(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def strict(record: Any) -> Any:
    """``record`` with every non-finite float replaced by None; a dict record gains ``nonfinite`` naming them."""
    found: dict[str, str] = {}
    cleaned = _clean(record, "", found)
    if found and isinstance(cleaned, dict):
        cleaned[NONFINITE] = {**(cleaned.get(NONFINITE) or {}), **found}
    return cleaned


def dumps(record: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``strict(record)``: always valid JSON (``allow_nan=False`` holds it to that)."""
    return json.dumps(strict(record), allow_nan=False, **kwargs)
