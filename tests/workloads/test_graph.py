"""OpGraph: construction errors, deterministic topological order, typed annotations, summary."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import pytest

from workloads.graph import GraphError, OpGraph, PrecisionPolicy
from workloads.ops import Elementwise, TensorSpec


@dataclass(frozen=True)
class Tag:
    value: int


@dataclass(frozen=True)
class Other:
    text: str


def _diamond() -> OpGraph:
    """x -> conv -> (left relu, right conv) -> add -> pool."""
    g = OpGraph("diamond", meta={"model": "diamond"})
    x = g.input("x", (1, 4, 8, 8))
    y = g.conv2d("stem", x, 8, 3, padding=1, bias=True)
    left = g.relu("left", y)
    right = g.conv2d("right", y, 8, 1)
    s = g.residual_add("add", left, right)
    g.global_pool("pool", s)
    return g


# ---- errors -------------------------------------------------------------------------------

def test_duplicate_operator_name():
    g = OpGraph("g")
    x = g.input("x", (1, 4))
    g.relu("act", x)
    with pytest.raises(GraphError, match="operator 'act' already exists"):
        g.relu("act", x)


def test_duplicate_input_name():
    g = OpGraph("g")
    g.input("x", (1, 4))
    with pytest.raises(GraphError, match="tensor 'x' already exists"):
        g.input("x", (2, 4))


def test_unknown_input_tensor():
    g = OpGraph("g")
    g.input("x", (1, 4))
    ghost = TensorSpec("ghost", (1, 4), "int8")
    with pytest.raises(GraphError, match="reads unknown tensor 'ghost'"):
        g.relu("act", ghost)
    assert "act" not in g and len(g) == 0


def test_input_tensor_must_match_the_graphs_tensor():
    a = OpGraph("a")
    a.input("x", (1, 4))
    b = OpGraph("b")
    x_b = b.input("x", (1, 8))  # same name, other shape: from another graph
    with pytest.raises(GraphError, match=r"reads tensor 'x' as \(1, 8\)"):
        a.relu("act", x_b)


def test_weight_name_collision():
    g = OpGraph("g")
    x = g.input("fc.weight", (2, 4))  # the name the linear's weight would take
    with pytest.raises(GraphError, match="writes tensor 'fc.weight', which exists"):
        g.linear("fc", x, 3)
    assert g.tensor("fc.weight").role == "activation"  # not overwritten


def test_output_name_collision():
    g = OpGraph("g")
    x = g.input("act.out", (1, 4))
    with pytest.raises(GraphError, match="writes tensor 'act.out', which exists"):
        g.relu("act", x)


def test_matmul_shape_mismatch():
    g = OpGraph("g")
    a = g.input("a", (2, 5, 7))
    with pytest.raises(GraphError, match="do not multiply"):
        g.matmul("mm", a, g.input("b", (2, 6, 4)))  # K 7 vs 6
    with pytest.raises(GraphError, match="do not multiply"):
        g.matmul("mm", a, g.input("c", (3, 7, 4)))  # batch 2 vs 3


def test_grouped_conv_with_indivisible_channels():
    g = OpGraph("g")
    x = g.input("x", (1, 6, 8, 8))
    with pytest.raises(GraphError, match="not divisible by groups=4"):
        g.conv2d("c", x, 8, 3, groups=4)  # 6 input channels
    with pytest.raises(GraphError, match="not divisible by groups=3"):
        g.conv2d("c", x, 8, 3, groups=3)  # 8 output channels
    with pytest.raises(GraphError, match="groups=0"):
        g.conv2d("c", x, 6, 3, groups=0)
    assert len(g) == 0


def test_empty_output_shape():
    g = OpGraph("g")
    x = g.input("x", (1, 3, 4, 4))
    with pytest.raises(GraphError, match="output shape .* is empty"):
        g.conv2d("c", x, 8, 7)  # a 7x7 kernel on a 4x4 map


def test_bad_inputs_and_precisions():
    g = OpGraph("g")
    with pytest.raises(GraphError, match="non-positive"):
        g.input("x", (1, 0, 4))
    with pytest.raises(GraphError, match="unknown precision 'int5'"):
        g.input("y", (1, 4), precision="int5")
    with pytest.raises(GraphError, match="precision.weights: unknown precision 'fp12'"):
        PrecisionPolicy(weights="fp12")
    assert PrecisionPolicy(activations="fp16").kv == "fp16"
    assert PrecisionPolicy(activations="fp16", kv_cache="int8").kv == "int8"


def test_elementwise_shape_mismatch():
    g = OpGraph("g")
    with pytest.raises(GraphError, match="differ"):
        g.residual_add("add", g.input("a", (1, 4)), g.input("b", (1, 5)))


# ---- structure and order ------------------------------------------------------------------

def test_edges_carry_tensors():
    g = _diamond()
    assert len(g) == 5
    assert g.nx.edges["stem", "left"]["tensor"] == "stem.out"
    assert sorted(g.predecessors("add")) == ["left", "right"]
    assert g.producer("right.out") == "right"
    assert g.producer("x") is None  # a graph input
    assert [t.name for t in g.graph_inputs] == ["x"]
    assert g.tensor("stem.weight").role == "weight"


def test_topological_order_is_deterministic():
    names = [op.name for op in _diamond().ops()]
    assert names == ["stem", "left", "right", "add", "pool"]  # insertion order
    assert names == [op.name for op in _diamond().ops()]
    g = _diamond()
    pos = {n: i for i, n in enumerate(names)}
    assert all(pos[u] < pos[v] for u, v in g.nx.edges)
    assert [op.name for op in g] == names


def test_independent_branches_keep_insertion_order():
    # two chains interleaved when built: order must follow insertion, not names or chains
    g = OpGraph("g")
    a, b = g.input("a", (1, 4)), g.input("b", (1, 4))
    a1 = g.relu("z_a1", a)
    b1 = g.relu("y_b1", b)
    g.relu("x_a2", a1)
    g.relu("w_b2", b1)
    assert [op.name for op in g.ops()] == ["z_a1", "y_b1", "x_a2", "w_b2"]


def test_order_is_refreshed_after_add():
    g = _diamond()
    assert len(g.ops()) == 5
    g.relu("after", g.tensor("pool.out"))
    assert [op.name for op in g.ops()][-1] == "after"


def test_totals():
    g = _diamond()
    # stem: 64 pixels * 36 * 8; right: 64 * 8 * 8
    assert g.macs == 64 * 36 * 8 + 64 * 8 * 8
    assert g.params == 8 * 4 * 9 + 8 + 8 * 8
    assert g.weight_bytes == g.params  # int8 by default
    assert "ops=5" in repr(g)


# ---- annotations --------------------------------------------------------------------------

def test_annotations_are_keyed_by_class():
    g = _diamond()
    assert not g.has("stem", Tag)
    g.annotate("stem", Tag(1))
    g.annotate("stem", Other("a"))
    assert g.has("stem", Tag) and g.get("stem", Tag) == Tag(1)
    assert g.get("stem", Other) == Other("a")
    g.annotate("stem", Tag(2))  # replaces the annotation of the same class
    assert g.get("stem", Tag) == Tag(2)
    assert not g.has("left", Tag)
    assert g.get("left", Tag, None) is None
    with pytest.raises(KeyError, match="operator 'left' has no Tag annotation"):
        g.get("left", Tag)


def test_copy_is_independent():
    g = _diamond()
    g.annotate("stem", Tag(1))
    g.ops()
    c = g.copy()
    assert [op.name for op in c.ops()] == [op.name for op in g.ops()]
    assert all(a is b for a, b in zip(c.ops(), g.ops()))  # operators are shared (immutable)
    c.annotate("stem", Tag(2))
    c.annotate("left", Tag(3))
    g.annotate("pool", Other("orig"))
    assert g.get("stem", Tag) == Tag(1) and not g.has("left", Tag)
    assert c.get("stem", Tag) == Tag(2) and not c.has("pool", Other)
    c.meta["batch"] = 4
    assert "batch" not in g.meta
    c.relu("extra", c.tensor("pool.out"))
    assert "extra" in c and "extra" not in g
    assert len(g) == 5 and len(g.ops()) == 5 and len(c.ops()) == 6
    assert c.precision == g.precision and c.name == g.name


# ---- summary ------------------------------------------------------------------------------

def test_summary():
    g = _diamond()
    rows = g.summary()
    assert [r["name"] for r in rows] == [op.name for op in g.ops()]
    stem = rows[0]
    assert stem == {"name": "stem", "kind": "conv2d", "output": (1, 8, 8, 8),
                    "macs": 64 * 36 * 8, "params": 8 * 4 * 9 + 8, "gemm": (64, 36, 8, 1)}
    assert rows[1]["kind"] == "elementwise" and rows[1]["gemm"] is None
    assert rows[-1]["output"] == (1, 8, 1, 1)
    assert sum(r["macs"] for r in rows) == g.macs
    assert sum(r["params"] for r in rows) == g.params


def test_graph_is_a_dag_over_networkx():
    g = _diamond()
    assert nx.is_directed_acyclic_graph(g.nx)
    assert isinstance(g.op("left"), Elementwise)


def test_a_cycle_is_reported():
    g = _diamond()
    g.nx.add_edge("pool", "stem", tensor="pool.out")  # only possible by editing networkx directly
    with pytest.raises(GraphError, match="has a cycle"):
        g.ops()


def test_builder_input_checks():
    from workloads.graph import GraphError, OpGraph

    g = OpGraph("checks")
    x = g.input("x", (1, 4, 8, 8))
    t = g.input("t", (4, 16))
    with pytest.raises(GraphError, match="'max' or 'avg'"):
        g.pool("p", x, "min", 2)
    with pytest.raises(GraphError, match="NCHW"):
        g.conv2d("c", t, 8, 3)
    with pytest.raises(GraphError, match="at least one input"):
        g.elementwise("e", "relu")
    with pytest.raises(GraphError, match="no operator 'nope'"):
        g.op("nope")
