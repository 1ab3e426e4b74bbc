"""Vision Transformers (workloads/vit.py): shapes, parameter counts, MACs, precision roles."""

from __future__ import annotations

import pytest

from workloads.graph import PrecisionPolicy
from workloads.registry import MODELS, build_model


@pytest.mark.golden
@pytest.mark.parametrize("name, params", [
    # timm's counts (sum of parameter numel): vit_base_patch16_224, vit_large_patch16_224,
    # vit_huge_patch14_224; Dosovitskiy et al. 2021, Table 1: 86 M, 307 M, 632 M
    ("vit-b-16", 86_567_656), ("vit-l-16", 304_326_632), ("vit-h-14", 632_045_800),
    # ViT-H with 16 x 16 patches (MixPE's artifact): ViT-H/14's count with a 768-wide patch
    # kernel (+ 1280 x 3 x (256 - 196)) and 60 fewer position rows (- 60 x 1280)
    ("vit-h-16", 632_045_800 + 1280 * 3 * (256 - 196) - 60 * 1280),
])
def test_parameter_counts(name, params):
    assert build_model(name).params == params


def test_vit_b16_shapes_and_macs():
    g = build_model("vit-b-16", batch=2)
    assert g.meta["tokens"] == 197 and MODELS["vit-b-16"].family == "transformer"
    qk = g.op("layers.0.attn.qk").gemm()
    assert (qk.M, qk.K, qk.N, qk.groups) == (197, 64, 197, 2 * 12)
    assert g.op("layers.11.mlp.down").gemm().K == 3072
    assert g.op("patch_embed").gemm().K == 3 * 16 * 16
    # 17.56 GMACs per image (the paper's 17.6 GFLOPs count multiply-adds), 12 layers
    assert g.macs / 2 == pytest.approx(17.56e9, rel=0.002)
    assert g.op("head").output.shape == (2, 1000)


def test_k_and_v_take_the_kv_precision():
    g = build_model("vit-b-16", precision=PrecisionPolicy(weights="int4", activations="fp16", kv_cache="int8",
                                                          group_size=128))
    assert g.op("layers.0.attn.k").output.precision == "int8"
    assert g.op("layers.0.attn.k").output.role == "kv_cache"
    assert g.op("layers.0.attn.q").output.precision == "fp16"
    assert g.op("layers.0.attn.q").weights[0].group_size == 128


def test_image_size_must_be_a_multiple_of_the_patch():
    with pytest.raises(ValueError, match="multiple of"):
        build_model("vit-b-16", image_size=230)
    assert build_model("vit-b-16", image_size=384).meta["tokens"] == 24 * 24 + 1
