"""How evaluation results are summarized and said: success rate with its 95 % interval, return, length.

Every command that evaluates a policy (pretrain, finetune, eval policy, the benchmark sweeps) prints
through `describe`, so a 0/1 task reads "success 0.62 [0.48, 0.74] (31/50)" (rates to two decimals, the
interval Wilson's) and never "1 +- 0".
"""
from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a success rate (95 % for z = 1.96): unlike p +- z sqrt(p(1-p)/n) it
    stays inside [0, 1] and is not empty at 0/n or n/n."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def fmt(x: float) -> str:
    """A number as a person reads it: 3 significant digits, no exponent for large returns."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "nan"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def success_summary(successes: int, n: int) -> dict:
    lo, hi = wilson_interval(successes, n)
    return {"successes": int(successes), "success_rate": successes / n if n else float("nan"),
            "success_ci95": [lo, hi]}


def describe(res: dict) -> str:
    """One line of an evaluation result (common.evaluate's dict, or a prefix-free subset of it)."""
    parts = []
    n = res.get("episodes")
    if res.get("success_defined", True) and "success_mean" in res and n:
        k = res.get("successes", round(res["success_mean"] * n))
        lo, hi = wilson_interval(k, n)
        parts.append(f"success {k / n:.2f} [{lo:.2f}, {hi:.2f}] ({k}/{n})")
    if "return_mean" in res:
        parts.append(f"return {fmt(res['return_mean'])} +- {fmt(res.get('return_std', float('nan')))}")
    if "length_mean" in res:
        parts.append(f"length {fmt(res['length_mean'])}")
    return ", ".join(parts)
