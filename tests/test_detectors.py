"""The detectors on synthetic curves shaped like the paper's figures, and on healthy ones, all with noise."""

import numpy as np
import pytest

from bai_core.stability.detectors import DetectorThresholds, detect_collapse, detect_hockey_stick, diagnose

STEPS = np.arange(3000)


def noisy(curve, scale, seed=0):
    return curve + np.random.default_rng(seed).normal(0, scale, len(curve))


def paper_length():
    """~930 tokens flat until step 60, ~260 by step 100, then 240-310 for the rest of 3000 steps."""
    return np.interp(STEPS, [0, 60, 100, 3000], [930, 930, 260, 280]) + 30 * np.sin(STEPS / 150)


def paper_long_bucket_reward():
    """Long-response bucket: 0.64, down to 0.35 by step ~200, slowly back to 0.75 by step 1500."""
    return np.interp(STEPS, [0, 50, 200, 1500, 3000], [0.64, 0.64, 0.35, 0.75, 0.76])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_collapse_is_detected_with_its_evidence(seed):
    verdict = detect_collapse(STEPS, noisy(paper_length(), 40, seed))
    assert verdict.detected
    assert 880 < verdict.L0 < 980
    assert 60 < verdict.collapsed_at < 110  # half of L0 is crossed on the way down to 260 by step 100
    assert verdict.recovered is False and verdict.drop > 0.6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_hockey_stick_is_detected(seed):
    verdict = detect_hockey_stick(STEPS, noisy(paper_long_bucket_reward(), 0.05, seed))
    assert verdict.detected, verdict.reason
    assert 150 <= verdict.minimum_step <= 260
    assert verdict.recovery_steps >= 3 * verdict.descent_steps
    assert 0.2 < verdict.drop < 0.4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_run_fires_nothing(seed):
    length = noisy(np.interp(STEPS, [0, 3000], [400, 700]), 30, seed)  # rising length
    reward = noisy(0.4 + 0.3 * (1 - np.exp(-STEPS / 800)), 0.04, seed)  # smooth saturating reward
    result = diagnose(STEPS, length, reward)
    assert result.fired == []
    assert result.sequence_length_collapse.trend_per_100_steps > 0


def test_quick_dip_that_recovers_at_once_is_no_hockey_stick():
    reward = np.interp(STEPS, [0, 100, 140, 180, 3000], [0.6, 0.6, 0.3, 0.6, 0.7])  # V: down and up in 40 steps each
    verdict = detect_hockey_stick(STEPS, noisy(reward, 0.03))
    assert not verdict.detected
    assert verdict.recovered and verdict.drop > 0.2  # it saw the dip, and judged it too quick


def test_slow_drift_is_no_collapse():
    verdict = detect_collapse(STEPS, noisy(np.interp(STEPS, [0, 3000], [930, 380]), 30))  # -59% over the whole run
    assert not verdict.detected
    assert verdict.trend_per_100_steps < 0  # the drift still shows as a negative trend


def test_collapse_that_recovers_is_not_flagged():
    length = np.interp(STEPS, [0, 60, 100, 250, 3000], [930, 930, 300, 900, 950])
    verdict = detect_collapse(STEPS, noisy(length, 30))
    assert not verdict.detected and verdict.recovered and verdict.recovered_at < 400


def test_windows_scale_to_a_short_planned_run():
    """The same shape compressed into a run planned for 100 steps is judged the same way; without the plan the
    windows are the absolute ones (a log that stopped early is no short run)."""
    short = np.arange(100)
    length = np.interp(short, [0, 3, 8, 100], [930, 930, 260, 280])
    reward = np.interp(short, [0, 2, 8, 55, 100], [0.64, 0.64, 0.35, 0.75, 0.76])
    result = diagnose(short, noisy(length, 20), reward, planned_steps=100)
    assert result.windows.early == 15 and result.windows.smoothing == 2 and result.windows.planned
    assert result.fired == ["collapse", "hockey_stick"]
    unplanned = diagnose(short, noisy(length, 20), reward).windows
    assert (unplanned.early, unplanned.recovery, unplanned.planned) == (300, 500, False)


def test_reward_buckets_are_judged_separately():
    """Overall reward smooth, one long bucket with a hockey stick: the run's verdict fires, naming the bucket."""
    buckets = {"0-100": list(noisy(np.full(3000, 0.5), 0.03)), "800-900": list(noisy(paper_long_bucket_reward(), 0.04)),
               "900-1000": [None] * 2996 + [0.1, 0.9, 0.1, 0.9]}  # too few points to judge
    result = diagnose(STEPS, np.full(3000, 500.0), noisy(np.full(3000, 0.55), 0.03), buckets)
    assert not result.reward_hockey_stick.detected
    assert result.hockey_stick_detected and result.fired == ["hockey_stick"]
    assert set(result.reward_hockey_stick_by_length) == {"0-100", "800-900"}
    assert result.to_json()["reward_hockey_stick"]["buckets"]["800-900"]["detected"] is True


def test_thresholds_are_configurable():
    reward = np.interp(STEPS, [0, 50, 200, 1500, 3000], [0.64, 0.64, 0.54, 0.62, 0.62])  # a 0.10 drop
    assert not detect_hockey_stick(STEPS, reward).detected
    assert detect_hockey_stick(STEPS, reward, DetectorThresholds(reward_drop_absolute=0.05)).detected


def test_short_or_empty_curves_are_not_judged():
    assert not detect_collapse([0, 1], [5, 1]).detected
    assert diagnose([], [], []).fired == []


def test_a_short_noisy_run_is_not_a_hockey_stick_or_a_collapse():
    """20 steps of 16 completions: the mean reward swings by more than any threshold from step to step."""
    steps = np.arange(1, 21)
    fired = [diagnose(steps, noisy(np.full(20, 16.0), 3, seed), noisy(np.full(20, -2.5), 0.7, seed)).fired
             for seed in range(30)]
    assert fired == [[]] * 30


# --- simulated runs with sampling noise (bai_core/stability/simulation.py; benchmarks/detector_power.py sweeps them) ---

def simulated(kind: str, completions: int, seed: int, **shape):
    from bai_core.stability.curves import Curves
    from bai_core.stability.simulation import Shape, simulate_run

    curves = Curves("bai")
    for record in simulate_run(Shape(kind, **shape), completions, seed):
        curves.add(record)
    return curves.diagnose(planned_steps=600)


@pytest.mark.parametrize("completions", [16, 64])
def test_healthy_runs_with_sampling_noise_raise_no_alarm(completions):
    """Flat or slowly rising rewards, each completion scored with the demo judge's spread, the demo's length shares:
    at 16 completions a step some buckets hold one or two; at 64, small drops become visible. Neither fires."""
    fired = [simulated("healthy", completions, seed).fired for seed in range(20)]
    assert fired == [[]] * 20


def test_the_papers_long_bucket_dip_and_collapse_are_caught_at_64_completions():
    """The long bucket loses 45% of its level by step 60 and climbs back over 400 steps; the collapse moves 80% of
    the completions into the shortest bucket. At 64 completions a step both are caught, the dip in its bucket."""
    runs = [simulated("hockey_stick", 64, seed) for seed in range(20)]
    caught = [run for run in runs if run.hockey_stick_detected]
    assert len(caught) >= 18
    for run in caught:
        fired = [name for name, v in run.reward_hockey_stick_by_length.items() if v.detected]
        assert fired == ["32-48"], fired
        verdict = run.reward_hockey_stick_by_length["32-48"]
        assert verdict.confidence >= 0.99 and verdict.samples_at_minimum > 0
        # planted: the half level crossed at step 40 going down, the bottom from ~56, the half level again at ~260
        assert 5 <= verdict.descent_steps <= 40 and verdict.recovery_steps >= 100
    assert all(simulated("collapse", 64, seed).sequence_length_collapse.detected for seed in range(10))


def test_a_sparse_bucket_with_noise_level_dips_is_not_a_hockey_stick():
    """The issue's real case: a bucket with ~1 completion a step, empty in a third of the steps, whose curve dips by
    noise alone. It gets no verdict (within the noise, or not enough samples); a bucket seen at few steps is listed
    as too sparse to judge."""
    shares = {"0-16": 0.05, "16-32": 0.63, "32-48": 0.07, "48-64": 0.24, "64-80": 0.01}
    levels = {"0-16": 1.0, "16-32": 2.6, "32-48": 2.7, "48-64": 2.4, "64-80": 2.0}
    for seed in range(10):
        run = simulated("healthy", 16, seed, shares=shares, levels=levels)
        assert run.fired == []
        sparse = run.reward_hockey_stick_by_length["32-48"]
        assert not sparse.detected and sparse.reason
        assert "64-80" in run.sparse_buckets and "64-80" not in run.reward_hockey_stick_by_length
        assert any(line.startswith("Too sparse to judge:") and "64-80" in line for line in run.story())


def test_a_real_demo_run_is_judged_stable_with_its_sparse_buckets_named():
    """tests/data/p3-demo-judge-600.metrics.jsonl: RL from the demo reasoning model (Paradigm 3) against the learned
    judge, 600 GRPO steps of 16 completions (how it was made: tests/data/README.md).

    Decided: stable. The length stays at 28-29 tokens (no collapse). The reward has a few short dips, each from a
    step or two that drew a very short answer (under 16 tokens), which the judge scores near -5 against ~6 for the
    rest. None is a hockey stick: at the widths that resolve a drop, none of them is 0.15 deep. The 32-48 bucket,
    seen at 30% of the steps, and the two rarer ones are named as too sparse to judge; only 16-32 (94% of the
    completions) is judged."""
    from pathlib import Path

    from bai_core.stability.logs import read_log

    run = read_log(Path(__file__).parent / "data" / "p3-demo-judge-600.metrics.jsonl").diagnose(planned_steps=600)
    assert run.fired == []
    assert not run.sequence_length_collapse.detected and run.sequence_length_collapse.drop < 0.1
    assert list(run.reward_hockey_stick_by_length) == ["16-32"]
    assert set(run.sparse_buckets) == {"0-16", "32-48", "48-64"}
    assert run.sparse_buckets["32-48"] == "present at 177 of 600 steps, 538 completions"
    for verdict in (run.reward_hockey_stick, run.reward_hockey_stick_by_length["16-32"]):
        assert verdict.drop < 0.15 and verdict.samples_at_minimum > verdict.samples_at_start


def test_a_bucket_too_sparse_to_judge_is_not_also_counted_as_judged():
    """The story names each bucket once: judged, or too sparse to judge (never both)."""
    rng = np.random.default_rng(0)
    steps = list(range(1, 41))
    diagnosis = diagnose(steps, [30.0] * 40, list(0.5 + rng.normal(0, 0.01, 40)),
                         reward_by_length={"0-16": list(rng.normal(0, 1.0, 40)),  # one noisy completion a step
                                           "16-32": list(0.5 + rng.normal(0, 0.01, 40))},
                         count_by_length={"0-16": [1] * 40, "16-32": [30] * 40})
    assert {n: v.enough_samples for n, v in diagnosis.reward_hockey_stick_by_length.items()} == {
        "0-16": False, "16-32": True}
    story = diagnosis.story()
    assert "Reward Hockey Stick per length bucket: 1 judged (16-32); not detected in any" in story
    assert any(line.startswith("Too sparse to judge: 0-16 (not enough samples") for line in story)


# --- entropy (bai_core/stability/entropy.py) ---

def test_entropy_that_collapses_and_stays_low_is_detected_with_its_evidence():
    from bai_core.stability.detectors import detect_entropy

    entropy = noisy(np.interp(STEPS, [0, 100, 300, 3000], [0.6, 0.6, 0.05, 0.05]), 0.01)
    verdict = detect_entropy(STEPS, entropy)
    assert verdict.detected and verdict.kinds == ["collapse"]
    assert 0.55 < verdict.E0 < 0.65 and 100 < verdict.collapsed_at < 300 and verdict.confidence >= 0.99


def test_a_healthy_entropy_decline_and_a_collapse_that_comes_back_are_not_collapses():
    from bai_core.stability.detectors import detect_entropy

    declining = noisy(np.interp(STEPS, [0, 3000], [0.6, 0.3]), 0.01)  # halves over the run: ordinary
    assert not detect_entropy(STEPS, declining).detected
    back = noisy(np.interp(STEPS, [0, 100, 300, 600, 3000], [0.6, 0.6, 0.05, 0.5, 0.5]), 0.01)
    verdict = detect_entropy(STEPS, back)
    assert not verdict.detected and "back at 0.5 x E0" in verdict.reason


def test_an_entropy_spike_is_detected_at_its_step_and_noise_is_not_a_spike():
    from bai_core.stability.detectors import detect_entropy

    entropy = noisy(np.full(3000, 0.4), 0.01)
    assert not detect_entropy(STEPS, entropy).detected
    entropy[1500:1503] = 1.2
    verdict = detect_entropy(STEPS, entropy)
    assert verdict.detected and verdict.kinds == ["spike"] and verdict.spike_step == 1500
    assert 0.38 < verdict.spike_reference < 0.42 and verdict.spike_value == pytest.approx(1.2, abs=0.05)


def test_entropy_not_logged_cannot_be_judged():
    result = diagnose(STEPS, np.full(3000, 500.0), np.full(3000, 0.5))
    assert not result.entropy.judged and result.cannot_judge == {"entropy": "no entropy in this log"}
    assert result.to_json()["entropy"]["judged"] is False and "entropy" not in result.fired


def test_bais_own_demo_run_with_its_heavy_tailed_entropy_is_judged_stable():
    """tests/data/demo-150.metrics.jsonl (`make demo`'s RL run; tests/data/README.md). Decided by eye from its plot:
    stable. The entropy wanders at 0.02-0.10 with single readings up to 4x its median, each back at once: noise of
    16 short completions, not a spike. A spike is its level jumping for entropy_spike_length points in a row; counted
    on one reading, it would fire here."""
    from pathlib import Path

    from bai_core.stability.logs import read_log

    curves = read_log(Path(__file__).parent / "data" / "demo-150.metrics.jsonl")
    assert curves.planned_steps == 150 and curves.diagnose().fired == []
    assert curves.diagnose().entropy.judged
    assert curves.diagnose(DetectorThresholds(entropy_spike_length=1)).entropy.kinds == ["spike"]
