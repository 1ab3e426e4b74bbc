"""A Gymnasium environment over an accelerator's design space, in the style of ArchGym.

Contract: ``TesseraEnv(experiment, space, targets)`` is a ``gymnasium.Env`` where

- an action picks one value per parameter of ``space`` (dotted path -> list of choices, or a
  ``{low, high, step}`` range): ``MultiDiscrete([n_1, ..., n_k])``;
- a step applies those values to the experiment (as a sweep point would: the normal path,
  validated) and simulates it once; identical designs are simulated once and remembered;
- the observation is the vector of the ``observe`` metrics (default: the targets' metrics) as
  ``float64``; ``reset`` returns the base experiment's metrics;
- the reward follows ArchGym's Timeloop environment (oss-arch-gym@53f745af,
  arch_gym/envs/TimeloopEnv.py:179: reward = sum over metrics of max((obs - target) / target, 0)),
  negated so that larger is better: 0 when every target is met, below 0 by the relative
  overshoot otherwise. A design that fails to validate or simulate gets ``invalid_reward`` and
  a zero observation, with the error in ``info["error"]``;
- an episode is ``max_steps`` steps long (``truncated``); it ends early (``terminated``) when a
  step meets every target.

The environment is deterministic: the same actions give the same observations and rewards for
any seed (the seed only seeds ``self.np_random`` for agents that use it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simulator.dse.extras import require

require("gymnasium", "simulator.dse.gym_env")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402

from simulator.dse.evaluate import EvalContext, evaluate  # noqa: E402
from simulator.dse.space import point_id, range_choices  # noqa: E402
from simulator.dse.spec import Param, RangeSpec, _check_values, resolve_param  # noqa: E402
from simulator.dse.store import row_metric  # noqa: E402
from workloads.errors import ConfigError, Problem, did_you_mean  # noqa: E402
from workloads.yamlio import load_yaml  # noqa: E402

__all__ = ["TesseraEnv", "ENV_ID"]

ENV_ID = "tessera/Accelerator-v0"


class TesseraEnv(gymnasium.Env):
    """Design an accelerator by choosing parameter values (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, experiment: str | Path | dict, space: dict[str, Any], targets: dict[str, float], *,
                 observe: list[str] | None = None, max_steps: int = 1, invalid_reward: float = -10.0):
        from simulator.dse.study import probe_metrics
        from simulator.experiment import experiment_from_dict

        if isinstance(experiment, (str, Path)):
            data, lines = load_yaml(experiment)
            file = str(experiment)
        else:
            data, lines, file = experiment, {}, None
        if not isinstance(data, dict):
            raise ConfigError(Problem(file, "", "expected an experiment mapping"))
        base = {k: v for k, v in data.items() if k not in ("sweep", "search")}
        exp = experiment_from_dict(base, file=file, lines=lines)
        problems: list[Problem] = []
        params: list[Param] = []
        choices: list[list[Any]] = []
        if not space:
            problems.append(Problem(None, "space", "give at least one dotted path with its choices"))
        for path, dim in (space or {}).items():
            param, err = resolve_param(path, [type(exp.architecture)])
            if err:
                problems.append(Problem(None, f"space.{path}", err))
                continue
            if isinstance(dim, dict):
                try:
                    dim = range_choices(param, RangeSpec.model_validate(dim))
                except (ValueError, TypeError) as exc:
                    problems.append(Problem(None, f"space.{path}", str(exc)))
                    continue
            found: list = []
            _check_values(param, dim, ("space", path), found)
            problems += [Problem(None, ".".join(map(str, k)), m) for k, m in found]
            if not found:
                params.append(param)
                choices.append(list(dim))
        known = probe_metrics(exp)
        observe = list(observe or targets)
        for name in list(targets) + observe:
            if name not in known:
                problems.append(Problem(None, f"metric '{name}'", "not a metric of this experiment",
                                        hint=did_you_mean(name, sorted(known))))
        for name, value in targets.items():
            if not (isinstance(value, (int, float)) and value > 0):
                problems.append(Problem(None, f"targets.{name}",
                                        f"a target must be a number > 0, found {value!r}"))
        if max_steps < 1:
            problems.append(Problem(None, "max_steps", f"must be >= 1, found {max_steps}"))
        if problems:
            raise ConfigError(problems)
        self.experiment = exp
        self.params = tuple(params)
        self.choices = choices
        self.targets = {k: float(v) for k, v in targets.items()}
        self.observe = observe
        self.max_steps = int(max_steps)
        self.invalid_reward = float(invalid_reward)
        self._ctx = EvalContext(base=base, file=file, params=self.params, lines=lines)
        self._cache: dict[str, dict] = {}
        self._steps = 0
        self.action_space = spaces.MultiDiscrete([len(c) for c in choices])
        self.observation_space = spaces.Box(low=0.0, high=np.finfo(np.float64).max, shape=(len(observe),),
                                            dtype=np.float64)

    @classmethod
    def from_search(cls, path: str | Path, targets: dict[str, float], **kwargs: Any) -> "TesseraEnv":
        """The environment over an experiment file's ``search.space`` (ranges need a step)."""
        data, _ = load_yaml(path)
        space = (data.get("search") or {}).get("space") if isinstance(data, dict) else None
        if not space:
            raise ConfigError(Problem(str(path), "search.space", "the file has no search space"))
        return cls(path, space, targets, **kwargs)

    # ---- the design behind an action --------------------------------------------------------

    def design(self, action: Any) -> dict[str, Any]:
        """The parameter values an action chooses."""
        a = np.asarray(action, dtype=np.int64).reshape(-1)
        if a.shape[0] != len(self.params) or not self.action_space.contains(a):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        return {p.path: c[int(i)] for p, c, i in zip(self.params, self.choices, a)}

    def _row(self, values: dict[str, Any]) -> dict:
        pid = point_id(self.params, values)
        if pid not in self._cache:
            self._cache[pid] = evaluate(self._ctx, (len(self._cache), pid, values))
        return self._cache[pid]

    def _observation(self, row: dict) -> np.ndarray:
        if row["status"] != "ok":
            return np.zeros(len(self.observe), dtype=np.float64)
        vals = [row_metric(row, m) for m in self.observe]
        return np.array([v if v is not None and np.isfinite(v) else 0.0 for v in vals], dtype=np.float64)

    def reward_of(self, metrics: dict[str, float]) -> float:
        """ArchGym's Timeloop reward, negated: -sum(max((value - target) / target, 0))."""
        overshoot = float(sum(max((metrics[m] - t) / t, 0.0) for m, t in self.targets.items()))
        return -overshoot if overshoot > 0 else 0.0

    # ---- gymnasium API ----------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._steps = 0
        row = self._row({})
        return self._observation(row), {"params": {}, "status": row["status"], "error": row.get("error")}

    def step(self, action: Any):
        values = self.design(action)
        row = self._row(values)
        self._steps += 1
        obs = self._observation(row)
        ok = row["status"] == "ok"
        metrics = {m: row_metric(row, m) for m in self.targets} if ok else {}
        if ok and all(v is not None and np.isfinite(v) for v in metrics.values()):
            reward = self.reward_of(metrics)
        else:
            ok, reward = False, self.invalid_reward
        terminated = bool(ok and reward == 0.0)
        truncated = bool(self._steps >= self.max_steps and not terminated)
        info = {"params": values, "status": row["status"], "error": row.get("error"),
                "metrics": dict(row.get("metrics") or {})}
        return obs, float(reward), terminated, truncated, info


if ENV_ID not in gymnasium.envs.registry:
    gymnasium.register(id=ENV_ID, entry_point="simulator.dse.gym_env:TesseraEnv")
