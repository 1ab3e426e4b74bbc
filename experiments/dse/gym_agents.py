"""Two agents in the Tessera Gym environment: random actions and an optuna (TPE) agent.

The environment (simulator/dse/gym_env.py) is ArchGym-style: an action picks one value per
parameter of experiments/dse/gym_eyeriss_alexnet.yaml's search space (MultiDiscrete), a step
simulates that Eyeriss-like design on AlexNet once, the observation is (cycles, energy_pj,
area_mm2), and the reward is -sum(max((obs - target) / target, 0)): 0 when every target is met.
Targets follow ArchGym's Timeloop configuration: the baseline design (the preset) improved by
20 % in cycles, 30 % in energy and 15 % in area.

    python experiments/dse/gym_agents.py [--steps 120] [--seed 0]

Prints each agent's best reward, whether it met every target, the design it found, and how long
it took: about 10 s with the defaults on an idle 2-core machine (18 s measured on a loaded one;
each step is one analytical simulation of AlexNet, about 40 ms; repeated designs are not
simulated again, so the time grows with --steps, not beyond the designs visited).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from simulator.dse.gym_env import TesseraEnv  # noqa: E402

SPACE_FILE = REPO / "experiments" / "dse" / "gym_eyeriss_alexnet.yaml"
IMPROVEMENT = {"cycles": 0.8, "energy_pj": 0.7, "area_mm2": 0.85}  # ArchGym Timeloop targets


def make_env(steps: int) -> TesseraEnv:
    probe = TesseraEnv.from_search(SPACE_FILE, {m: 1.0 for m in IMPROVEMENT})
    baseline, _ = probe.reset()
    targets = {m: float(v) * IMPROVEMENT[m] for m, v in zip(probe.observe, baseline)}
    return TesseraEnv.from_search(SPACE_FILE, targets, max_steps=steps)


def random_agent(env: TesseraEnv, steps: int, seed: int) -> tuple[float, dict]:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    best = (-float("inf"), {})
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        best = max(best, (reward, info["params"]), key=lambda b: b[0])
        if terminated or truncated:
            env.reset()
    return best


def optuna_agent(env: TesseraEnv, steps: int, seed: int) -> tuple[float, dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    env.reset(seed=seed)
    best = (-float("inf"), {})
    for _ in range(steps):
        trial = study.ask()
        action = [trial.suggest_int(f"a{i}", 0, int(n) - 1) for i, n in enumerate(env.action_space.nvec)]
        _, reward, terminated, truncated, info = env.step(action)
        study.tell(trial, reward)
        best = max(best, (reward, info["params"]), key=lambda b: b[0])
        if terminated or truncated:
            env.reset()
    return best


def _short(path: str) -> str:
    parts = path.split(".")
    return parts[-2] if "sram" in path else parts[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=120,
                    help="environment steps (designs tried) per agent (default: 120)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the random agent's action sampling and of the optuna TPE sampler (default: 0)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    env = make_env(args.steps)
    print(f"space: {', '.join(f'{p.path} ({len(c)})' for p, c in zip(env.params, env.choices))}; "
          f"{int(env.action_space.nvec.prod())} designs")
    print("targets: " + ", ".join(f"{m} <= {t:.4g}" for m, t in env.targets.items()))
    for name, agent in (("random", random_agent), ("optuna-tpe", optuna_agent)):
        reward, design = agent(env, args.steps, args.seed)
        met = "meets every target" if reward == 0 else "misses a target"
        print(f"{name:11s} best reward {reward:8.4f} ({met}) in {args.steps} steps: "
              + ", ".join(f"{_short(k)}={v}" for k, v in design.items()))
    print(f"{len(env._cache)} designs simulated in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
