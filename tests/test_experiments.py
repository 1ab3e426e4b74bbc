"""Smoke test of every experiment YAML users run: it loads, validates and simulates.

Files are found by globbing ``experiments/`` (all but ``experiments/benchmarks/``), so a new
experiment is covered as soon as it is added.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.experiment import load_experiment
from simulator.run import run_experiment

EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"
SKIPPED_DIRS = {"benchmarks"}


def experiment_files() -> list[Path]:
    files = sorted(p for p in EXPERIMENTS_DIR.rglob("*.yaml")
                   if p.relative_to(EXPERIMENTS_DIR).parts[0] not in SKIPPED_DIRS)
    return files + sorted(p for p in EXPERIMENTS_DIR.rglob("*.yml")
                          if p.relative_to(EXPERIMENTS_DIR).parts[0] not in SKIPPED_DIRS)


FILES = experiment_files()
IDS = [str(p.relative_to(EXPERIMENTS_DIR)) for p in FILES]


def test_experiments_are_found():
    assert EXPERIMENTS_DIR.is_dir()
    assert "quickstart.yaml" in IDS
    assert any(i.startswith("presets/") for i in IDS)
    assert not any(i.startswith("benchmarks/") for i in IDS)


def test_every_shipped_preset_has_an_experiment():
    from architectures.presets import preset_names

    used = {load_experiment(p).architecture.name for p in FILES
            if p.relative_to(EXPERIMENTS_DIR).parts[0] == "presets"}
    assert set(preset_names()) <= used, f"presets without an experiment: {set(preset_names()) - used}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_experiment_loads(path):
    exp = load_experiment(path)
    assert exp.name
    assert len(exp.workload) > 0
    assert exp.architecture.peak_macs_per_s > 0
    assert exp.source == str(path)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_experiment_file_says_what_it_shows_and_how_to_run_it(path):
    text = path.read_text(encoding="utf-8")
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert comments, f"{path}: no comments"
    assert any("tessera " in line for line in comments), f"{path}: say how to run it (a 'tessera' command)"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_experiment_runs_with_the_analytical_engine(path):
    result = run_experiment(path, engine="analytical")
    m = result.metrics()
    exp = load_experiment(path)
    assert result.engine == "analytical"
    assert m["cycles"] > 0
    assert m["latency_s"] > 0
    if exp.llm is None and exp.serving is None:
        assert m["macs"] == exp.workload.macs
    else:  # prefill and/or every decode step; or every serving iteration
        assert m["macs"] >= exp.workload.macs
        assert m["throughput_tokens_per_s"] > 0 and m["energy_pj_per_token"] > 0
    assert 0 < m["utilization"] <= 1
    assert m["energy_pj"] > 0
