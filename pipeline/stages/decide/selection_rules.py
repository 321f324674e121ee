"""Which candidate a key keeps (--select=per_key|global|auto), from backtest scores.

Evidence: a key's comparable windows, those in which every candidate has a score of --select_metric
(pipeline.stages.decide.select); each carries its end and its first test period.

- `per_key`: the candidate with the lowest mean score over the key's own comparable windows (ties: the
  first candidate in --model's order). Two or three windows are little evidence: on held-out data this
  choice is often worse than one good model for every key (issue 22).
- `global`: for every key, the candidate with the lowest mean score over every key's comparable windows
  (each key x window counts once). The scores are pooled as they are: with keys of different scales use
  a scale-free --select_metric (mase, the default, smape or wape), or the large keys decide.
- `auto` (the default with several candidates): the global choice, except for a key whose own best beats
  it on *every* one of at least `auto_min_windows` comparable windows and whose mean score is lower by at
  least AUTO_MARGIN (10%) of the global choice's mean on that key. Noise alone rarely passes both (of
  two equally good candidates, the one not chosen globally wins all of a key's n windows with probability
  1/2^n, and by a 10% margin less often still); a key that really follows another model passes them easily.
  The key's own best is the best of k - 1 challengers, so noise passes up to (k - 1) times as often: the
  windows needed grow with log2(k - 1) (AUTO_MIN_WINDOWS with 2 candidates, 5 with 7, 6 with 11), which
  keeps that chance at most what it is with two candidates. Without it, on the tourism data with 3 windows
  and 7 candidates, auto overrode 15% of the keys and did worse than global (bench/NOTE.md).

`chosen_by` says what decided a key: `key` (its own evidence) or `global` (the pooled evidence).
"""

from __future__ import annotations

import math

import numpy as np

PER_KEY, GLOBAL, AUTO = "per_key", "global", "auto"
RULES = (PER_KEY, GLOBAL, AUTO)
BY_KEY, BY_GLOBAL = "key", "global"
AUTO_MIN_WINDOWS = 2
AUTO_MARGIN = 0.10


def best(scores: dict[str, list[float]], models: list[str]) -> str | None:
    """The model with the lowest mean score (ties: the first in `models`); None unless every model has scores."""
    means = [(float(np.mean(scores[m])), position) for position, m in enumerate(models) if scores.get(m)]
    if len(means) < len(models):
        return None
    return models[min(means)[1]]


def choose(windows: dict[int, dict[str, float]], models: list[str]) -> str | None:
    """`per_key`: the best mean over these windows ({window start: {model: score}})."""
    return best({m: [scores[m] for scores in windows.values()] for m in models}, models) if windows else None


def evidence(windows: dict[int, dict[str, float]], ends: dict[int, int]) -> dict:
    """One key's contribution to the pooled evidence: {window end: {model: {"sum", "n"}}}, summed over keys
    (pipeline.utils.counters.SumCounters) into what `global_choice` reads."""
    out: dict = {}
    for start, scores in windows.items():
        bucket = out.setdefault(str(ends[start]), {})
        for model, value in scores.items():
            bucket[model] = {"sum": value, "n": 1}
    return out


def global_choice(pooled: dict, models: list[str], before: int | None = None) -> str | None:
    """`global`: the lowest pooled mean over every key's comparable windows ending before period `before`
    (all of them when None)."""
    totals = {m: [0.0, 0] for m in models}
    for end, by_model in pooled.items():
        if before is not None and int(end) >= before:
            continue
        if not set(models) <= set(by_model):
            continue
        for m in models:
            totals[m][0] += by_model[m]["sum"]
            totals[m][1] += by_model[m]["n"]
    if not any(n for _, n in totals.values()):
        return None
    return best({m: [total / n] for m, (total, n) in totals.items() if n}, models)


def auto_min_windows(candidates: int) -> int:
    """The comparable windows a key needs before its own evidence may override the global choice among
    `candidates` (AUTO_MIN_WINDOWS + ceil(log2(candidates - 1)))."""
    return AUTO_MIN_WINDOWS + math.ceil(math.log2(max(candidates - 1, 1)))


def auto_choice(windows: dict[int, dict[str, float]], models: list[str], global_model: str | None
                ) -> tuple[str | None, str]:
    """`auto`: (the model, what chose it) from the key's own windows and the global choice."""
    own = choose(windows, models)
    if global_model is None:
        return own, BY_KEY
    if own is None or own == global_model or len(windows) < auto_min_windows(len(models)):
        return global_model, BY_GLOBAL
    every = all(scores[own] < scores[global_model] for scores in windows.values())
    own_mean = float(np.mean([scores[own] for scores in windows.values()]))
    global_mean = float(np.mean([scores[global_model] for scores in windows.values()]))
    if every and own_mean <= (1.0 - AUTO_MARGIN) * global_mean:
        return own, BY_KEY
    return global_model, BY_GLOBAL


def rule_choice(rule: str, windows: dict[int, dict[str, float]], models: list[str], global_model: str | None
                ) -> tuple[str | None, str]:
    """(model, chosen_by) of one rule for one key."""
    if rule == PER_KEY:
        return choose(windows, models), BY_KEY
    if rule == GLOBAL:
        return global_model, BY_GLOBAL
    return auto_choice(windows, models, global_model)
