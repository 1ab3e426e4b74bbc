"""The model registry: names, options, and errors with a "did you mean"."""

from __future__ import annotations

import pytest

from workloads.errors import ConfigError
from workloads.graph import PrecisionPolicy
from workloads.registry import MODELS, build_model, model_names, register_model

CNNS = ["alexnet", "mobilenet_v1", "mobilenet_v2", "resnet18", "resnet50", "vgg16"]


def test_cnns_are_registered():
    names = model_names()
    assert set(CNNS) <= set(names)
    assert names == sorted(names)
    for name in CNNS:
        entry = MODELS[name]
        assert entry.family == "cnn" and entry.description and entry.source
        assert entry.options == {"batch": 1, "image_size": 224, "precision": None}


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(ConfigError) as err:
        build_model("resnet5")
    problem, = err.value.problems
    assert problem.path == "workload.model"
    assert "'resnet5' is not a known model" in problem.message
    assert "did you mean 'resnet50'?" in str(err.value)
    assert "available: alexnet" in str(err.value)


def test_unknown_model_with_a_typo():
    with pytest.raises(ConfigError, match="did you mean 'mobilenet_v2'"):
        build_model("mobilenetv2")


def test_model_names_are_case_insensitive():
    assert build_model("VGG16").name == "vgg16"


def test_unknown_option_suggests_the_closest_option():
    with pytest.raises(ConfigError) as err:
        build_model("resnet50", batch_size=4)
    problem, = err.value.problems
    assert problem.path == "workload.batch_size"
    assert "not accepted by model 'resnet50'" in problem.message
    assert "accepts: batch, image_size, precision" in problem.message
    assert "did you mean 'batch'?" in str(err.value)


def test_every_unknown_option_is_reported():
    with pytest.raises(ConfigError) as err:
        build_model("alexnet", imagesize=256, precison=None)
    assert [p.path for p in err.value.problems] == ["workload.imagesize", "workload.precison"]
    text = str(err.value)
    assert "did you mean 'image_size'?" in text and "did you mean 'precision'?" in text


def test_options_reach_the_builder():
    g = build_model("mobilenet_v1", batch=2, image_size=192,
                    precision=PrecisionPolicy(weights="int4", activations="fp16"))
    assert g.meta == {"model": "mobilenet_v1", "batch": 2, "image_size": 192}
    assert g.tensor("image").shape == (2, 3, 192, 192)
    assert g.tensor("image").precision == "fp16"
    assert g.tensor("fc.weight").precision == "int4"


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("resnet50", family="cnn", description="", source="")(lambda: None)
