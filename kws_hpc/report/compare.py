"""Small statistics for comparing runs: McNemar's paired test and mean +- std over seeds.

Pure Python (math only), so the report's numbers do not depend on which SciPy is installed.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

EXACT_BELOW = 25  # fewer discordant pairs: exact binomial test; else chi-square with continuity correction


def mcnemar(a_correct: Sequence[bool], b_correct: Sequence[bool], exact_below: int = EXACT_BELOW) -> dict:
    """McNemar's test on paired outcomes of two classifiers over the same clips.

    Returns the 2x2 table (`both`, `a_only` = A right and B wrong, `b_only`, `neither`), the number of
    discordant pairs, the test used (`exact` binomial or `chi2` with continuity correction), the
    statistic (the smaller discordant count for the exact test) and the two-sided p-value.
    """
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired outcomes differ in length: {len(a_correct)} vs {len(b_correct)}")
    pairs = list(zip((bool(x) for x in a_correct), (bool(y) for y in b_correct)))
    both = sum(1 for x, y in pairs if x and y)
    a_only = sum(1 for x, y in pairs if x and not y)
    b_only = sum(1 for x, y in pairs if y and not x)
    neither = len(pairs) - both - a_only - b_only
    return {"n": len(pairs), "both": both, "a_only": a_only, "b_only": b_only, "neither": neither,
            **mcnemar_counts(a_only, b_only, exact_below)}


def mcnemar_counts(b: int, c: int, exact_below: int = EXACT_BELOW) -> dict:
    """McNemar's test from the two discordant counts alone (b: only A right, c: only B right)."""
    n = b + c
    if n == 0:
        return {"discordant": 0, "method": "exact", "statistic": 0.0, "p_value": 1.0}
    if n < exact_below:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
        return {"discordant": n, "method": "exact", "statistic": float(k), "p_value": min(1.0, 2 * tail)}
    stat = (abs(b - c) - 1) ** 2 / n
    # chi-square with one degree of freedom: P(X > s) = erfc(sqrt(s / 2))
    return {"discordant": n, "method": "chi2", "statistic": stat, "p_value": math.erfc(math.sqrt(stat / 2))}


def mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (ddof 1; None for a single value) of a list of numbers."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"n": 0, "mean": None, "std": None}
    mean = sum(vals) / len(vals)
    std: Optional[float] = None
    if len(vals) > 1:
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    return {"n": len(vals), "mean": mean, "std": std}


def describe_mcnemar(res: dict, a: str, b: str) -> str:
    """One sentence: who was right where the other was wrong, and whether that is significant."""
    test = ("exact binomial test" if res["method"] == "exact"
            else "chi-square with continuity correction")
    verdict = "a significant" if res["p_value"] < 0.05 else "no significant"
    return (f"On {res['n']} shared test clips, {a} alone was right on {res['a_only']} and {b} alone on "
            f"{res['b_only']} ({res['discordant']} discordant pairs; {test}, p = {res['p_value']:.3g}): "
            f"{verdict} difference at the 5 % level.")
