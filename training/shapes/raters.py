"""Simulated annotators: noisy raters whose preference follows a utility with a set accuracy.

Utility of a sample = verifier score + `quality_weight` x visual quality (both in [0, 1]). For a pair
whose utilities differ by more than `tie_margin`, the rater picks the better one with probability
`accuracy` and the worse one otherwise, so `accuracy` is also the Bayes ceiling of any model that
predicts these raters' choices on such pairs. Pairs within the margin are ties with probability
`tie_rate`, otherwise a coin flip. Pairs whose utilities are both below `both_bad_below` are judged
"both bad" (off by default).
"""

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RaterConfig:
    accuracy: float = 0.85  # P(choose the better sample) on pairs that differ
    tie_rate: float = 0.5  # P(tie) when the utilities are within the margin
    tie_margin: float = 1e-6
    quality_weight: float = 0.2
    both_bad_below: float = -1.0  # below this utility on both sides: "both bad" (never, by default)

    def __post_init__(self) -> None:
        if not 0.5 <= self.accuracy <= 1.0:
            raise ValueError(f"accuracy must be in [0.5, 1], got {self.accuracy}")
        if not 0.0 <= self.tie_rate <= 1.0:
            raise ValueError(f"tie_rate must be in [0, 1], got {self.tie_rate}")
        if self.tie_margin < 0 or self.quality_weight < 0:
            raise ValueError("tie_margin and quality_weight must be non-negative")


def utility(verifier_score: float | None, quality: float | None, config: RaterConfig) -> float:
    """What a simulated rater values; unknown parts count as 0."""
    return (verifier_score or 0.0) + config.quality_weight * (quality or 0.0)


def rater_choice(u_first: float, u_second: float, rng: random.Random, config: RaterConfig) -> str:
    """One noisy judgment of a pair given the two utilities: first, second, tie or both_bad."""
    if max(u_first, u_second) < config.both_bad_below:
        return "both_bad"
    if abs(u_first - u_second) <= config.tie_margin:
        if rng.random() < config.tie_rate:
            return "tie"
        return "first" if rng.random() < 0.5 else "second"
    better, worse = ("first", "second") if u_first > u_second else ("second", "first")
    return better if rng.random() < config.accuracy else worse
