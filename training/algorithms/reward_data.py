"""Preference pairs on the shapes world judged by simulated annotators, for reward models.

``pairs_from_simulated_raters`` judges ground-truth and corrupted renders with the simulated raters
of :mod:`training.shapes.raters` (so the Bayes ceiling of any predictor is known);
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from training.algorithms.reward_model import CHOICE_LABELS, PreferencePair
from training.shapes import corrupt, grammar, raters, render, verify

# -- simulated annotators on the shapes world --------------------------------------------------------

PAIR_KINDS = ("truth_vs_corrupt", "truth_vs_truth", "corrupt_vs_corrupt")


@dataclass(frozen=True, eq=False)
class SimulatedPairs:
    """Pairs judged by simulated raters, with what the raters valued (``utilities``, shape (n, 2)).

    ``ceiling`` is the rater accuracy: on pairs whose utilities differ no model can expect to agree
    with these raters more often (the Bayes ceiling). On pairs of equal utility a non-tie label is
    a coin flip, worth 0.5 to any model."""

    pairs: tuple[PreferencePair, ...]
    utilities: np.ndarray
    kinds: tuple[str, ...]
    rater: raters.RaterConfig

    @property
    def ceiling(self) -> float:
        return self.rater.accuracy

    def _select(self, indices) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(len(self.pairs)) if indices is None else np.asarray(indices, int)
        labels = np.array([self.pairs[i].label for i in idx])
        return idx[labels != 0.5], labels[labels != 0.5]

    def differing(self, indices=None) -> np.ndarray:
        """The non-tie pairs among ``indices`` whose utilities differ (beyond the tie margin)."""
        idx, _ = self._select(indices)
        u = self.utilities[idx]
        return idx[np.abs(u[:, 0] - u[:, 1]) > self.rater.tie_margin]

    def bayes_accuracy(self, indices=None) -> float:
        """Expected accuracy of the Bayes-optimal predictor on the non-tie pairs among ``indices``:
        ``ceiling`` on pairs whose utilities differ, 0.5 on the rest."""
        idx, _ = self._select(indices)
        if not len(idx):
            return math.nan
        n_diff = len(self.differing(indices))
        return (n_diff * self.ceiling + (len(idx) - n_diff) * 0.5) / len(idx)

    def agreement(self, indices=None) -> float:
        """Realised share of the differing pairs whose label follows the utilities (the empirical
        ceiling; its expectation is ``ceiling``)."""
        idx = self.differing(indices)
        if not len(idx):
            return math.nan
        u = self.utilities[idx]
        labels = np.array([self.pairs[i].label for i in idx])
        return float(np.mean((u[:, 0] > u[:, 1]) == (labels > 0.5)))


def _render_pair(kind: str, spec, rng: np.random.Generator):
    truth = lambda: render.render(spec, rng)  # noqa: E731
    wrong = lambda: corrupt.corrupt(spec, rng)[0]  # noqa: E731
    first, second = {"truth_vs_corrupt": (truth, wrong), "truth_vs_truth": (truth, truth)}.get(kind, (wrong, wrong))
    a, b = first(), second()
    return (b, a) if rng.random() < 0.5 else (a, b)


def pairs_from_simulated_raters(
    n: int,
    modality: str = "image",
    rater_config: raters.RaterConfig | None = None,
    rng: np.random.Generator | None = None,
    *,
    task: str | None = None,
    mix: tuple[float, float, float] = (0.7, 0.15, 0.15),
    criteria: Sequence[str] = (),
) -> SimulatedPairs:
    """``n`` judged pairs of renders of one prompt each, the shapes world's stand-in for annotation.

    Kinds (probabilities ``mix``): a ground-truth render against a corrupted one (corrupt.py), two
    ground truths, two corruptions. The order within a pair is random. Utility is the verifier
    score (raters.utility, no quality term); the label is ``raters.rater_choice`` (first 1, second
    0, tie 0.5; "both bad" judgments are skipped and drawn again). A criterion is a verifier clause
    ("color", "count", "motion", ...): its label is a rater's choice on that clause alone, None
    where the prompt has no such clause."""
    rater_config = rater_config or raters.RaterConfig()
    rng = rng if rng is not None else np.random.default_rng(0)
    if n < 1 or len(mix) != 3 or min(mix) < 0 or not sum(mix) > 0:
        raise ValueError("n must be positive and mix three non-negative weights with a positive sum")
    coin = random.Random(int(rng.integers(2**63)))
    probs = np.asarray(mix, float) / sum(mix)
    pairs, utilities, kinds = [], [], []
    while len(pairs) < n:
        spec = grammar.sample_prompt(rng, task=task, modality=modality)
        kind = PAIR_KINDS[int(rng.choice(3, p=probs))]
        a, b = _render_pair(kind, spec, rng)
        va, vb = verify.verify(spec, a), verify.verify(spec, b)
        ua, ub = raters.utility(va.score, None, rater_config), raters.utility(vb.score, None, rater_config)
        choice = raters.rater_choice(ua, ub, coin, rater_config)
        if choice == "both_bad":
            continue
        labels = {}
        for c in criteria:
            if c in va.clauses and c in vb.clauses:
                pick = raters.rater_choice(float(va.clauses[c]), float(vb.clauses[c]), coin, rater_config)
                labels[c] = CHOICE_LABELS.get(pick, 0.5)
            else:
                labels[c] = None
        pairs.append(PreferencePair(spec.text, a, b, CHOICE_LABELS[choice], labels))
        utilities.append((ua, ub))
        kinds.append(kind)
    return SimulatedPairs(tuple(pairs), np.array(utilities, float), tuple(kinds), rater_config)
