"""Simulated raters: exact behaviour of the noisy choice rule (no database)."""

import random

import pytest

from training.shapes.raters import RaterConfig, rater_choice, utility


def test_perfect_rater_always_picks_the_higher_utility():
    config = RaterConfig(accuracy=1.0)
    rng = random.Random(0)
    assert {rater_choice(0.9, 0.1, rng, config) for _ in range(200)} == {"first"}
    assert {rater_choice(0.1, 0.9, rng, config) for _ in range(200)} == {"second"}


def test_accuracy_is_the_share_of_correct_choices():
    config = RaterConfig(accuracy=0.85)
    rng = random.Random(1)
    n = 20000
    correct = sum(rater_choice(1.0, 0.0, rng, config) == "first" for _ in range(n))
    assert abs(correct / n - 0.85) < 0.01  # 3 standard errors is 0.0076


def test_equal_utilities_give_ties_at_the_tie_rate_and_coin_flips_otherwise():
    config = RaterConfig(tie_rate=0.5)
    rng = random.Random(2)
    choices = [rater_choice(0.5, 0.5, rng, config) for _ in range(20000)]
    assert abs(choices.count("tie") / 20000 - 0.5) < 0.015
    assert abs(choices.count("first") / 20000 - 0.25) < 0.015


def test_utility_adds_weighted_quality():
    config = RaterConfig(quality_weight=0.2)
    assert utility(0.5, 1.0, config) == pytest.approx(0.7)
    assert utility(None, None, config) == 0.0


def test_config_rejects_impossible_values():
    with pytest.raises(ValueError):
        RaterConfig(accuracy=0.4)
    with pytest.raises(ValueError):
        RaterConfig(tie_rate=1.5)
