"""Reward functions: the verifier's exact values, a reward model's head, weighted sums, input checks."""

import numpy as np
import pytest

from training.algorithms.reward_model import RewardModelConfig, build_reward_model
from training.algorithms.rewards import (
    reward_model_reward,
    verifier_accuracy_reward,
    verifier_reward,
    weighted_reward,
)
from training.shapes import corrupt, grammar, render


@pytest.fixture(scope="module")
def model():
    config = RewardModelConfig(criteria=("color",), channels=(8, 8), feature_dim=16, text_dim=8, hidden=16)
    return build_reward_model(config).eval()


@pytest.mark.parametrize("text", ["a red circle", "two blue squares", "a red cube", "a green triangle moving left"])
def test_verifier_reward_is_one_on_ground_truth_and_below_on_corruptions(text):
    spec = grammar.parse(text)
    rng = np.random.default_rng(0)
    truth = [render.render(spec, rng) for _ in range(3)]
    wrong = [corrupt.corrupt(spec, rng, kind=kind)[0] for kind in corrupt.kinds_for(spec)]
    media = truth + wrong
    scores = verifier_reward(media, [text] * len(media), [{} for _ in media])
    assert scores.dtype == np.float64
    assert scores[:3].tolist() == [1.0, 1.0, 1.0]
    assert np.all(scores[3:] < 1.0)


def test_verifier_reward_uses_the_spec_in_metadata():
    spec = grammar.parse("a red circle left of a blue square")
    rng = np.random.default_rng(1)
    image = render.render(spec, rng)
    as_object = verifier_reward([image], ["<anything>"], [{"spec": spec}])
    as_dict = verifier_reward([image], ["<anything>"], [{"spec": spec.to_dict()}])
    assert as_object.tolist() == as_dict.tolist() == [1.0]
    # The same image judged against the opposite relation: 3 of 4 clauses (object, count, colour) hold.
    other = verifier_reward([image], ["a red circle right of a blue square"], None)
    assert other.tolist() == [0.75]
    with pytest.raises(ValueError, match="expected 'a' or a number"):
        verifier_reward([image], ["<anything>"], [{}])


def test_verifier_accuracy_reward_is_one_only_when_every_clause_holds():
    spec = grammar.parse("a red circle left of a blue square")
    rng = np.random.default_rng(1)
    image = render.render(spec, rng)
    # right, then the opposite relation (3 of 4 clauses), then an empty frame (none)
    prompts = [spec.text, "a red circle right of a blue square", spec.text]
    media = [image, image, np.zeros_like(image)]
    assert verifier_reward(media, prompts, None).tolist() == [1.0, 0.75, 0.0]
    strict = verifier_accuracy_reward(media, prompts, [{"spec": spec}, {}, {"spec": spec.to_dict()}])
    assert strict.dtype == np.float64
    assert strict.tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("media", "prompts", "metadata", "error", "match"),
    [
        ([np.zeros((32, 32, 3), np.uint8)] * 2, ["a circle"], None, ValueError, "equal lengths, got 2, 1, 1"),
        ([np.zeros((32, 32, 3), np.uint8)], ["a circle"], [{}, {}], ValueError, "equal lengths, got 1, 1, 2"),
        ([np.zeros((32, 32, 3), np.uint8)], "a circle", None, TypeError, "not one string"),
    ],
)
def test_reward_inputs_are_checked(media, prompts, metadata, error, match, model):
    fns = (
        verifier_reward,
        verifier_accuracy_reward,
        reward_model_reward(model),
        weighted_reward([(1.0, verifier_reward)]),
    )
    for fn in fns:
        with pytest.raises(error, match=match):
            fn(media, prompts, metadata)


def test_weighted_reward_is_the_exact_weighted_sum():
    first = lambda media, prompts, metadata: np.array([1.0, 2.0])  # noqa: E731
    second = lambda media, prompts, metadata: np.array([0.5, -1.0])  # noqa: E731
    media = [np.zeros((32, 32, 3), np.uint8)] * 2
    total = weighted_reward([(2.0, first), (-0.5, second)])(media, ["a circle", "a square"], None)
    assert total.tolist() == [1.75, 4.5]


def test_weighted_reward_mixes_verifier_and_model(model):
    spec = grammar.parse("a blue circle")
    rng = np.random.default_rng(2)
    media = [render.render(spec, rng), corrupt.corrupt(spec, rng, kind="color")[0]]
    prompts = [spec.text] * 2
    verifier = verifier_reward(media, prompts, None)
    learned = reward_model_reward(model)(media, prompts, None)
    mixed = weighted_reward([(0.7, verifier_reward), (0.3, reward_model_reward(model))])(media, prompts, None)
    np.testing.assert_allclose(mixed, 0.7 * verifier + 0.3 * learned, rtol=0, atol=1e-12)


def test_weighted_reward_rejects_bad_terms():
    with pytest.raises(ValueError, match="at least one"):
        weighted_reward([])
    with pytest.raises(ValueError, match="finite weight"):
        weighted_reward([(float("nan"), verifier_reward)])
    bad = weighted_reward([(1.0, lambda m, p, d: np.zeros(3))])
    with pytest.raises(ValueError, match=r"shape \(3,\) for 1 samples"):
        bad([np.zeros((32, 32, 3), np.uint8)], ["a circle"], None)


def test_reward_model_reward_returns_the_heads_raw_or_sigmoid(model):
    rng = np.random.default_rng(3)
    specs = [grammar.parse(t) for t in ("a red circle", "a green square", "two blue triangles")]
    media = [render.render(s, rng) for s in specs]
    prompts = [s.text for s in specs]
    raw = reward_model_reward(model)(media, prompts, None)
    assert raw.shape == (3,) and raw.dtype == np.float64
    assert np.array_equal(raw, model.score(media, prompts))
    colour = reward_model_reward(model, "color")(media, prompts, None)
    assert np.array_equal(colour, model.score(media, prompts, criterion="color"))
    squashed = reward_model_reward(model, transform="sigmoid")(media, prompts, None)
    np.testing.assert_allclose(squashed, 1 / (1 + np.exp(-raw)), rtol=0, atol=1e-15)
    one_by_one = reward_model_reward(model, batch_size=1)(media, prompts, None)
    np.testing.assert_allclose(one_by_one, raw, rtol=0, atol=1e-5)
    assert reward_model_reward(model)([], [], []).shape == (0,)


def test_reward_model_reward_rejects_bad_options(model):
    with pytest.raises(ValueError, match="unknown criterion 'motion'"):
        reward_model_reward(model, "motion")
    with pytest.raises(ValueError, match="transform must be one of"):
        reward_model_reward(model, transform="tanh")
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        reward_model_reward(model, batch_size=0)
