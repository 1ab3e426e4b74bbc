"""The experiment-format documentation names every key the schema accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from architectures.systolic import SystolicArray
from mappers.pipeline import MapperOptions
from simulator.experiment import ExperimentSpec, OutputOptions, WorkloadSpec

DOC = (Path(__file__).resolve().parents[1] / "experiments" / "README.md").read_text()


@pytest.mark.parametrize("model", [ExperimentSpec, WorkloadSpec, MapperOptions, OutputOptions, SystolicArray])
def test_every_field_is_documented(model):
    missing = [name for name in model.model_fields if f"`{name}" not in DOC and f"{name}`" not in DOC
               and f"`{name.split('_')[0]}" not in DOC]
    assert not missing, f"experiments/README.md does not mention {missing} of {model.__name__}"
