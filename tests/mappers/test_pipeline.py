"""Mapper passes, the pipeline's checks, dataflow choice, fusion and lowering."""

from __future__ import annotations

import numpy as np
import pytest

from mappers.annotations import OpPlan, Placement, Tiling, Traffic
from mappers.plan import fold_streams
from mappers.pipeline import PASSES, MapperOptions, PassError, Pipeline
from simulator.engines import get_engine
from simulator.program import COMPUTE, TRANSFER
from simulator.run import lower_workload
from tests.conftest import small_array
from workloads.errors import ConfigError
from workloads.registry import build_model


@pytest.fixture(scope="module")
def resnet18():
    return build_model("resnet18")


def test_lint_after_every_pass(resnet18):
    Pipeline().run(resnet18, small_array(16, 16), MapperOptions(dataflow="auto"), lint=True)


def test_passes_do_not_mutate_their_input(resnet18):
    before = {op.name: resnet18.annotations(op.name) for op in resnet18.ops()}
    Pipeline().run(resnet18, small_array(16, 16), MapperOptions())
    assert before == {op.name: resnet18.annotations(op.name) for op in resnet18.ops()}


def test_requires_is_checked(resnet18):
    with pytest.raises(PassError, match="requires"):
        Pipeline(("plan",)).run(resnet18, small_array(), MapperOptions())


def test_unknown_pass_name_has_a_hint():
    with pytest.raises(ConfigError, match="did you mean 'allocate'"):
        Pipeline(("place", "alocate"))


def test_registered_passes_declare_requirements():
    assert PASSES["fuse"].requires == ("place",)
    assert PASSES["place_tensors"].requires == ("place",)
    assert PASSES["allocate"].requires == ("place_tensors",)
    assert PASSES["plan"].requires == ("allocate",)


@pytest.mark.parametrize("layer", ["conv1", "layer2.0.conv1", "layer4.1.conv2", "fc"])
def test_auto_picks_the_fastest_dataflow_per_layer(resnet18, layer):
    arch = small_array(32, 32, bandwidth="16 GB/s")
    auto = Pipeline().run(resnet18, arch, MapperOptions(dataflow="auto"))
    chosen = auto.get(layer, Tiling)
    assert chosen.chosen_by.startswith("auto:")
    costs = {}
    for df in ("os", "ws", "is"):
        r = get_engine("analytical").run(lower_workload(resnet18, arch, MapperOptions(dataflow=df)))
        costs[df] = r.layer(layer).total_cycles
    assert costs[chosen.dataflow] == min(costs.values())


def test_auto_whole_network_is_no_slower_than_any_fixed_dataflow(resnet18):
    arch = small_array(32, 32, bandwidth="16 GB/s")
    cycles = {df: get_engine("analytical").run(lower_workload(resnet18, arch, MapperOptions(dataflow=df))).cycles
              for df in ("os", "ws", "is", "auto")}
    assert cycles["auto"] <= min(cycles["os"], cycles["ws"], cycles["is"])


def test_relu_is_fused_into_the_conv_and_costs_no_traffic(resnet18):
    g = Pipeline().run(resnet18, small_array(16, 16), MapperOptions())
    assert g.get("conv1.relu", Placement) == Placement("fused", fused_into="conv1")
    assert not g.has("conv1.relu", Traffic)
    # relu after a residual add fuses into the add (a vector op)
    assert g.get("layer1.0.relu", Placement).fused_into == "layer1.0.add"
    unfused = Pipeline().run(resnet18, small_array(16, 16), MapperOptions(fuse_activations=False))
    assert unfused.get("conv1.relu", Placement).unit == "vector"


def test_fused_ops_keep_their_energy():
    g = build_model("resnet18")
    arch = small_array(16, 16)
    fused = lower_workload(g, arch, MapperOptions())
    conv1 = next(l for l in fused.layers if l.name == "conv1")
    assert conv1.fused == ("conv1.relu",)
    relu_ops = g.op("conv1.relu").vector_ops
    assert conv1.counters["vector_energy_pj"] == pytest.approx(relu_ops * arch.energy_model().vector_op_pj.value)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("sram", ["512 B", "4 KiB", "1 MiB"])
def test_fold_streams_partition_the_layer_traffic(dataflow, sram):
    g = build_model("resnet18")
    arch = small_array(8, 8, dataflow, sram=sram)
    ann = Pipeline().run(g, arch, MapperOptions())
    for name in ("conv1", "layer2.0.conv1", "layer3.1.conv2", "fc"):
        op = ann.op(name)
        t = ann.get(name, Traffic)
        streams = fold_streams(op, ann.get(name, Tiling).plan, t)
        reads = sum(r for r, _ in streams.values())
        writes = sum(w for _, w in streams.values())
        assert len(reads) == ann.get(name, Tiling).plan.folds
        assert reads.sum() == t.dram_read_bytes
        assert writes.sum() == t.dram_write_bytes
        assert (reads >= 0).all() and (writes >= 0).all()


@pytest.mark.parametrize("fidelity", ["layer", "tile"])
def test_program_bytes_and_cycles_match_the_layer_totals(fidelity):
    g = build_model("resnet18")
    arch = small_array(16, 16, "ws", sram="8 KiB", bandwidth="4 GB/s")
    p = lower_workload(g, arch, MapperOptions(fidelity=fidelity, max_tiles_per_layer=16))
    for info in p.layers:
        mine = p.layer == info.index
        comp = mine & (p.kind == COMPUTE)
        xfer = mine & (p.kind == TRANSFER)
        assert p.cycles[comp].sum() == info.compute_cycles
        assert p.nbytes[xfer].sum() == info.counters["dram_read_bytes"] + info.counters["dram_write_bytes"]
        assert info.counters["dram_read_bytes"] == (info.counters["compulsory_dram_read_bytes"]
                                                    + info.counters["noncompulsory_dram_read_bytes"])
        n = comp.sum()
        assert n == 1 if fidelity == "layer" else 1 <= n <= 16


def test_double_buffering_dependencies():
    g = build_model("resnet18")
    p = lower_workload(g, small_array(8, 8, "os", sram="8 KiB"), MapperOptions(max_tiles_per_layer=8))
    labels = list(p.labels)
    idx = {name: i for i, name in enumerate(labels)}
    load2 = idx["layer1.0.conv1 load 2"]
    deps = {labels[d] for d in p.deps(load2)}
    assert "layer1.0.conv1 compute 0" in deps    # its buffer half is free once tile 0 is done
    assert "layer1.0.conv1 load 1" in deps       # loads are issued in order
    comp2 = idx["layer1.0.conv1 compute 2"]
    cdeps = {labels[d] for d in p.deps(comp2)}
    assert {"layer1.0.conv1 load 2", "layer1.0.conv1 compute 1", "layer1.0.conv1 store 0"} <= cdeps
    # a layer's first load waits for the stores of the layers that produce its input
    first = {labels[d] for d in p.deps(idx["layer1.0.conv2 load 0"])}
    assert any(d.startswith("layer1.0.conv1 store") for d in first)


def test_coalescing_bounds_tasks_per_layer():
    g = build_model("resnet50")
    p = lower_workload(g, small_array(8, 8, "os"), MapperOptions(max_tiles_per_layer=4))
    compute = p.kind == COMPUTE
    assert np.bincount(p.layer[compute]).max() <= 4
    # coalesced tiles still account for every fold of every array layer
    for info in p.layers:
        if info.unit == "array":
            assert p.count[compute & (p.layer == info.index)].sum() == info.folds


def test_prefetch_across_layers_is_bounded_by_the_buffers(tmp_path):
    # two independent layers (as in a SCALE-Sim topology): the second layer's first load must
    # wait until the first layer's second-to-last tile has freed a buffer half
    from workloads.scalesim import load_topology

    topo = tmp_path / "t.csv"
    topo.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
                    "a, 16, 16, 3, 3, 8, 16, 1,\nb, 16, 16, 3, 3, 8, 16, 1,\n")
    p = lower_workload(load_topology(topo), small_array(8, 8, "os"), MapperOptions(max_tiles_per_layer=4))
    labels = list(p.labels)
    first_b = labels.index("b load 0")
    last_a_load = max(l for l in labels if l.startswith("a load"))
    assert {labels[d] for d in p.deps(first_b)} == {"a compute 2", last_a_load}
