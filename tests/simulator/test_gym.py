"""The Gym environment: passes gymnasium's checker, is deterministic, rewards as ArchGym does."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402

from simulator.dse.gym_env import ENV_ID, TesseraEnv  # noqa: E402
from workloads.errors import ConfigError  # noqa: E402

EXP = {"name": "gym_test", "architecture": {"preset": "scalesim_32x32"},
       "workload": {"gemm": {"M": 256, "K": 128, "N": 256}}, "mapper": {"fidelity": "layer"},
       "engine": "analytical"}
SPACE = {"architecture.rows": [8, 16, 32, 64], "architecture.cols": {"low": 8, "high": 64, "step": 8},
         "mapper.dataflow": ["os", "ws", "is"]}
TARGETS = {"latency_s": 3e-5, "area_mm2": 2.0}


def make(**kw) -> TesseraEnv:
    return TesseraEnv(EXP, SPACE, TARGETS, **kw)


def test_spaces():
    env = make()
    assert list(env.action_space.nvec) == [4, 8, 3]
    assert env.observation_space.shape == (2,) and env.observation_space.dtype == np.float64
    assert env.design([1, 7, 2]) == {"architecture.rows": 16, "architecture.cols": 64, "mapper.dataflow": "is"}
    with pytest.raises(ValueError):
        env.design([4, 0, 0])


def test_passes_gymnasiums_env_checker():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test...
        warnings.filterwarnings("ignore", message=".*render.*")  # ...except: we render nothing
        check_env(make(max_steps=3), skip_render_check=True)


def test_deterministic_for_a_seed():
    def episode(seed):
        env = make(max_steps=6)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        out = [obs.tolist()]
        for _ in range(6):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            out.append((obs.tolist(), reward, terminated, truncated))
        return out

    assert episode(7) == episode(7)
    assert episode(7) != episode(8)


def test_reward_is_archgyms_negated_relative_overshoot():
    env = make()
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step([0, 0, 0])
    lat, area = info["metrics"]["latency_s"], info["metrics"]["area_mm2"]
    assert obs.tolist() == [lat, area]
    expected = -(max((lat - 3e-5) / 3e-5, 0) + max((area - 2.0) / 2.0, 0))
    assert reward == pytest.approx(expected) and reward < 0
    assert not terminated and truncated  # max_steps=1 by default
    assert env.reward_of({"latency_s": 1e-6, "area_mm2": 1.0}) == 0.0


def test_meeting_every_target_terminates():
    env = TesseraEnv(EXP, SPACE, {"latency_s": 1.0, "area_mm2": 1e6}, max_steps=10)
    env.reset(seed=0)
    _, reward, terminated, truncated, _ = env.step([3, 7, 0])
    assert reward == 0.0 and terminated and not truncated


def test_an_invalid_design_gets_the_invalid_reward():
    env = TesseraEnv({**EXP, "architecture": {"preset": "scalesim_32x32",
                                              "overrides": {"memory.ifmap_sram.size": "256 B"}}},
                     {"architecture.rows": [8, 4096]}, TARGETS, invalid_reward=-5.0)
    env.reset(seed=0)
    obs, reward, _, _, info = env.step([1])
    assert reward == -5.0 and not obs.any() and "smaller than two rows" in info["error"]


def test_bad_spaces_and_targets_are_config_errors():
    with pytest.raises(ConfigError) as info:
        TesseraEnv(EXP, {"architecture.rowz": [8], "mapper.dataflow": []}, {"latency": 1.0, "area_mm2": -1})
    text = str(info.value)
    assert "did you mean 'rows'?" in text and "empty list" in text
    assert "did you mean 'latency_s'?" in text and "must be a number > 0" in text


def test_from_search_uses_the_files_space_and_gym_make_works(repo):
    import gymnasium

    path = repo / "experiments" / "dse" / "gym_eyeriss_alexnet.yaml"
    env = TesseraEnv.from_search(path, {"cycles": 1e8})
    assert len(env.params) == 6 and env.observe == ["cycles"]
    made = gymnasium.make(ENV_ID, experiment=EXP, space=SPACE, targets=TARGETS)
    obs, _ = made.reset(seed=1)
    assert obs.shape == (2,)
