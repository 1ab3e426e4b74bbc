"""SCALE-Sim topology CSV -> OpGraph (workloads/scalesim.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workloads.errors import ConfigError
from workloads.graph import PrecisionPolicy
from workloads.ops import Conv2D, Linear
from workloads.scalesim import load_topology, read_topology_rows

CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
GEMM_HEADER = "Layer, M, N, K,\n"


def write(tmp_path: Path, text: str, name: str = "topo.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def errors(path: Path, fmt: str = "conv") -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_topology(path, fmt=fmt)
    return str(info.value).splitlines()


def test_conv_rows_become_unpadded_convs_with_their_own_inputs(tmp_path):
    p = write(tmp_path, CONV_HEADER + "Conv1, 12, 12, 3, 3, 4, 10, 1,\nConv2, 9, 9, 3, 3, 3, 20, 2,\n")
    g = load_topology(p)
    assert [op.name for op in g.ops()] == ["Conv1", "Conv2"]
    c1, c2 = g.op("Conv1"), g.op("Conv2")
    assert isinstance(c1, Conv2D)
    assert c1.inputs[0].shape == (1, 4, 12, 12) and c1.padding == (0, 0) and c1.kernel == (3, 3)
    assert c1.output.shape == (1, 10, 10, 10)
    gm = c1.gemm()
    assert (gm.M, gm.K, gm.N, gm.groups) == (100, 36, 10, 1)
    assert c2.stride == (2, 2) and c2.output.shape == (1, 20, 4, 4)
    # SCALE-Sim simulates every layer on its own: no edges, one graph input per layer
    assert g.nx.number_of_edges() == 0
    assert [t.name for t in g.graph_inputs] == ["Conv1.ifmap", "Conv2.ifmap"]
    assert g.name == "topo" and g.meta["format"] == "conv"
    assert g.meta["source_lines"] == {"Conv1": 2, "Conv2": 3}


def test_trailing_comma_optional_blank_lines_and_bom(tmp_path):
    text = "\ufeff" + CONV_HEADER + "\n a , 5, 6, 2, 3, 1, 4, 1\n\n   \nb,5,5,5,5,1,1,1,,\n"
    g = load_topology(write(tmp_path, text))
    assert [op.name for op in g.ops()] == ["a", "b"]
    assert g.op("a").inputs[0].shape == (1, 1, 5, 6) and g.op("a").kernel == (2, 3)


def test_depthwise_rows_expand_per_channel_like_scalesim(tmp_path):
    p = write(tmp_path, CONV_HEADER + "before, 8, 8, 3, 3, 2, 2, 1,\nConv_DP, 10, 10, 3, 3, 3, 2, 1,\nafter, 8, 8, 1, 1, 2, 2, 1,\n")
    g = load_topology(p)
    names = [op.name for op in g.ops()]
    assert names == ["before", "Conv_DPChannel_0", "Conv_DPChannel_1", "Conv_DPChannel_2", "after"]
    for i in range(3):
        op = g.op(f"Conv_DPChannel_{i}")
        assert op.inputs[0].shape == (1, 1, 10, 10) and op.output.shape == (1, 2, 8, 8)
        assert op.block == "Conv_DP" and op.groups == 1
    assert g.meta["source_lines"]["Conv_DPChannel_2"] == 3
    assert g.nx.number_of_edges() == 0


def test_dp_match_is_case_sensitive_substring_as_in_scalesim(tmp_path):
    g = load_topology(write(tmp_path, CONV_HEADER + "dp_lower, 5, 5, 3, 3, 2, 1, 1,\nmyDPconv, 5, 5, 3, 3, 2, 1, 1,\n"))
    assert [op.name for op in g.ops()] == ["dp_lower", "myDPconvChannel_0", "myDPconvChannel_1"]


def test_gemm_rows_map_like_scalesim(tmp_path):
    p = write(tmp_path, GEMM_HEADER + "g1, 20, 13, 17,\ng2, 64, 48, 100\n")
    g = load_topology(p, fmt="gemm")
    op = g.op("g1")
    assert isinstance(op, Linear)
    # SCALE-Sim: ifmap H=M, W=K, filter 1xK, 1 channel, N filters -> GEMM M x K x N
    assert (op.tokens, op.in_features, op.out_features) == (20, 17, 13)
    gm = op.gemm()
    assert (gm.M, gm.K, gm.N) == (20, 17, 13)
    assert op.inputs[0].shape == (20, 17) and len(op.weights) == 1  # no bias in SCALE-Sim
    assert g.nx.number_of_edges() == 0 and len(g.graph_inputs) == 2


def test_sparsity_column_is_checked_recorded_and_not_applied(tmp_path):
    p = write(tmp_path, GEMM_HEADER + "dense, 8, 8, 8, 1:1,\nsparse, 8, 8, 8, 2:4,\n")
    g = load_topology(p, fmt="gemm")
    assert g.meta["sparsity"] == {"sparse": "2:4"}
    assert g.op("sparse").macs == 8 * 8 * 8  # dense: SCALE-Sim ignores N:M with sparsity off
    lines = errors(write(tmp_path, CONV_HEADER + "a, 5, 5, 3, 3, 1, 1, 1, 4:2,\nb, 5, 5, 3, 3, 1, 1, 1, x,\n"))
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'topo.csv'}:2: column 9 (Sparsity (N:M)): expected a sparsity ratio N:M")
    assert "found '4:2'" in lines[0] and "found 'x'" in lines[1]


def test_repeated_names_are_made_unique(tmp_path):
    g = load_topology(write(tmp_path, GEMM_HEADER + "fc, 4, 4, 4,\nfc, 4, 4, 4,\nfc, 2, 2, 2,\n"), fmt="gemm")
    assert [op.name for op in g.ops()] == ["fc", "fc#2", "fc#3"]
    assert g.meta["renamed"] == {"fc#2": "fc", "fc#3": "fc"}


def test_output_size_differences_from_scalesim_are_recorded(tmp_path):
    # (14 - 1) is not a multiple of stride 2: Tessera 7 outputs, SCALE-Sim ceil(15 / 2) = 8
    g = load_topology(write(tmp_path, CONV_HEADER + "pw, 14, 14, 1, 1, 8, 12, 2,\nok, 9, 9, 3, 3, 3, 4, 2,\n"))
    assert g.op("pw").output.shape == (1, 12, 7, 7)
    assert g.meta["scalesim_ofmap"] == {"pw": {"scalesim": (8, 8), "tessera": (7, 7)}}


def test_precision_policy_is_applied(tmp_path):
    p = write(tmp_path, GEMM_HEADER + "g, 4, 8, 16,\n")
    g = load_topology(p, fmt="gemm", precision=PrecisionPolicy(weights="int4", activations="fp16"))
    op = g.op("g")
    assert op.weights[0].precision == "int4" and op.inputs[0].precision == "fp16"
    assert load_topology(p, fmt="gemm").op("g").weights[0].precision == "int8"


def test_every_bad_row_is_reported_with_line_and_column(tmp_path):
    text = (CONV_HEADER
            + "ok, 8, 8, 3, 3, 1, 1, 1,\n"
            + "short, 8, 8, 3,\n"
            + "nonint, 8, abc, 3, 3, 1, 1, 1,\n"
            + "zero, 8, 8, 3, 3, 0, -2, 1,\n"
            + "big, 4, 8, 5, 9, 1, 1, 1,\n"
            + ", 8, 8, 3, 3, 1, 1, 1,\n"
            + "long, 8, 8, 3, 3, 1, 1, 1, 1:1, 7,\n")
    p = write(tmp_path, text)
    lines = errors(p)
    f = str(p)
    assert lines == [
        f"{f}:3: too few columns: expected 8 (Layer name, IFMAP Height, IFMAP Width, Filter Height, "
        "Filter Width, Channels, Num Filter, Strides) and an optional sparsity ratio N:M, found 4",
        f"{f}:4: column 3 (IFMAP Width): expected a positive integer, found 'abc'",
        f"{f}:5: column 6 (Channels): expected a positive integer, found 0",
        f"{f}:5: column 7 (Num Filter): expected a positive integer, found -2",
        f"{f}:6: column 4 (Filter Height): Filter Height 5 is larger than IFMAP Height 4 (SCALE-Sim's "
        "IFMAP dimensions already include any padding)",
        f"{f}:6: column 5 (Filter Width): Filter Width 9 is larger than IFMAP Width 8 (SCALE-Sim's "
        "IFMAP dimensions already include any padding)",
        f"{f}:7: column 1 (Layer name): expected a layer name, found an empty cell",
        f"{f}:8: too many columns: expected 8 (Layer name, IFMAP Height, IFMAP Width, Filter Height, "
        "Filter Width, Channels, Num Filter, Strides) and an optional sparsity ratio N:M, found 10",
    ]


def test_wrong_format_gets_a_hint(tmp_path):
    gemm_file = write(tmp_path, GEMM_HEADER + "g1, 20, 13, 17,\n")
    lines = errors(gemm_file, "conv")
    assert "too few columns" in lines[0] and "is this a GEMM topology? (use -i gemm" in lines[0]
    conv_file = write(tmp_path, CONV_HEADER + "c, 8, 8, 3, 3, 1, 1, 1,\n", "conv.csv")
    lines = errors(conv_file, "gemm")
    assert "too many columns" in lines[0] and "convolution topology? (use -i conv" in lines[0]


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("\n  \n", "the file is empty"),
    (CONV_HEADER, "no layers: the file has a header line but no layer lines"),
    ("c1, 8, 8, 3, 3, 1, 1, 1,\nc2, 8, 8, 3, 3, 1, 1, 1,\n", "the first line must be the header"),
])
def test_files_without_layers(tmp_path, text, message):
    lines = errors(write(tmp_path, text))
    assert len(lines) == 1 and lines[0].startswith(str(tmp_path / "topo.csv")) and message in lines[0]


def test_missing_file_folder_and_binary(tmp_path):
    assert errors(tmp_path / "nope.csv") == [f"{tmp_path / 'nope.csv'}: topology file not found"]
    assert errors(tmp_path) == [f"{tmp_path}: is a folder, expected a topology CSV file"]
    b = tmp_path / "bin.csv"
    b.write_bytes(b"\xff\xfe\x00garbage")
    assert "not a text file" in errors(b)[0]


def test_unknown_format_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="expected one of conv, gemm"):
        read_topology_rows(write(tmp_path, GEMM_HEADER + "g, 1, 1, 1,\n"), "mnk")
