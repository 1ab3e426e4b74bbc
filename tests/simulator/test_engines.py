"""The event engines (numba core, simpy reference) on hand-built programs with known answers,
malformed programs, stall attribution, and real workloads against the analytical model."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mappers.pipeline import MapperOptions
from simulator.core.flat import occupancy
from simulator.engines import get_engine
from simulator.program import LayerInfo, LoweredProgram, ProgramBuilder, ProgramError, Resource, transfer_cycles
from simulator.run import lower_workload
from tests.conftest import small_array
from workloads.registry import build_model

ENGINES = ("numba", "simpy")


def layers(n: int, unit: str = "u") -> list[LayerInfo]:
    return [LayerInfo(index=i, name=f"L{i}", kind="conv", unit=unit, dataflow=None, block=None, macs=0,
                      vector_ops=0, compute_cycles=0, folds=0, mapping_efficiency=None,
                      compute_utilization=None, peak_macs_per_cycle=0, gemm=None) for i in range(n)]


def builder(*, lanes: int = 1, bytes_per_cycle: float = 4.0, latency: int = 0, n_layers: int = 1) -> ProgramBuilder:
    b = ProgramBuilder(1e9, [Resource("u", "unit", lanes=lanes),
                             Resource("c", "channel", bytes_per_cycle=bytes_per_cycle, latency_cycles=latency)])
    b.layers.extend(layers(n_layers))
    return b


def run(engine: str, program: LoweredProgram):
    result = get_engine(engine).run(program)
    assert result.timeline is not None
    return result, result.timeline.start.tolist(), result.timeline.end.tolist()


def double_buffered(b: ProgramBuilder, tiles: int, load_bytes: int, compute: int, store_bytes: int = 0,
                    layer: int = 0) -> None:
    """Tiles as mappers.lower writes them: load t after compute t-2, compute t after load t,
    compute t-1 and store t-2, store t after compute t and store t-1."""
    loads, comps, stores = [], [], []
    for t in range(tiles):
        ld = b.transfer("c", load_bytes, layer=layer, label=f"load {t}",
                        deps=[loads[-1] if loads else None, comps[t - 2] if t >= 2 else None])
        c = b.compute("u", compute, layer=layer, label=f"compute {t}",
                      deps=[ld, comps[-1] if comps else None, stores[t - 2] if t >= 2 and store_bytes else None])
        loads.append(ld)
        comps.append(c)
        if store_bytes:
            stores.append(b.transfer("c", store_bytes, layer=layer, label=f"store {t}",
                                     deps=[c, stores[-1] if stores else None]))


@pytest.mark.parametrize("engine", ENGINES)
def test_second_transfer_waits_for_the_channel(engine):
    b = builder(bytes_per_cycle=4.0)
    b.transfer("c", 40, layer=0, label="a")
    b.transfer("c", 40, layer=0, label="b")
    result, start, end = run(engine, b.build())
    assert (start, end, result.cycles) == ([0, 10], [10, 20], 20)
    channel = next(r for r in result.resources if r.name == "c")
    assert (channel.busy_cycles, channel.idle_cycles, channel.tasks, channel.bytes) == (20, 0, 2, 80)


@pytest.mark.parametrize("engine", ENGINES)
def test_dependency_chain(engine):
    b = builder(bytes_per_cycle=8.0)
    c0 = b.compute("u", 5, layer=0)
    t = b.transfer("c", 16, deps=[c0], layer=0)
    b.compute("u", 3, deps=[t], layer=0)
    result, start, end = run(engine, b.build())
    assert (start, end, result.cycles) == ([0, 5, 7], [5, 7, 10], 10)
    layer = result.layers[0]
    assert (layer.compute_cycles, layer.stall_memory_cycles, layer.stall_dependency_cycles,
            layer.stall_busy_cycles) == (8, 2, 0, 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_double_buffering_hides_loads_behind_compute(engine):
    tiles, load, compute, store = 6, 4, 10, 2  # load + store < compute: only the first load and last store show
    b = builder(bytes_per_cycle=8.0)
    double_buffered(b, tiles, load * 8, compute, store * 8)
    result, start, end = run(engine, b.build())
    assert result.cycles == load + tiles * compute + store
    layer = result.layers[0]
    assert layer.compute_cycles == tiles * compute
    assert layer.stall_memory_cycles == load + store
    assert layer.stall_dependency_cycles == layer.stall_busy_cycles == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_double_buffering_cannot_hide_slow_loads(engine):
    tiles, load, compute = 5, 9, 4  # the channel is the bottleneck: loads back to back
    b = builder(bytes_per_cycle=2.0)
    double_buffered(b, tiles, load * 2, compute)
    result, start, end = run(engine, b.build())
    assert result.cycles == tiles * load + compute
    assert start[0::2] == [t * load for t in range(tiles)]  # loads never wait
    layer = result.layers[0]
    assert layer.stall_memory_cycles == result.cycles - tiles * compute


@pytest.mark.parametrize("engine", ENGINES)
def test_unit_with_two_lanes(engine):
    b = builder(lanes=2)
    for _ in range(3):
        b.compute("u", 5, layer=0)
    result, start, end = run(engine, b.build())
    assert start == [0, 0, 5] and result.cycles == 10
    assert sorted(result.timeline.lane[:2].tolist()) == [0, 1]
    unit = result.resources[0]
    assert (unit.busy_cycles, unit.idle_cycles) == (15, 2 * 10 - 15)  # lane-cycles
    layer = result.layers[0]  # overlapping computes: the overlap is negative busy-unit stall
    assert layer.stall_cycles == 10 - 15 == layer.stall_busy_cycles


@pytest.mark.parametrize("engine", ENGINES)
def test_channel_latency_is_pipelined(engine):
    b = builder(bytes_per_cycle=4.0, latency=7)
    a = b.transfer("c", 40, layer=0)
    b.transfer("c", 40, layer=0)
    b.compute("u", 1, deps=[a], layer=0)
    result, start, end = run(engine, b.build())
    assert start == [0, 10, 17]  # the second transfer starts when the channel is released
    assert end == [17, 27, 18]
    assert result.cycles == 27
    assert result.resources[1].busy_cycles == 20


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_duration_tasks(engine):
    b = builder(bytes_per_cycle=math.inf, latency=0)
    z0 = b.compute("u", 0, layer=0)
    z1 = b.transfer("c", 0, deps=[z0], layer=0)
    z2 = b.transfer("c", 10**6, deps=[z1], layer=0)  # unlimited bandwidth: no time either
    c = b.compute("u", 5, deps=[z2], layer=0)
    b.compute("u", 0, deps=[c], layer=0)
    b.compute("u", 0, layer=0)  # independent, but behind the others in id order
    result, start, end = run(engine, b.build())
    assert start == [0, 0, 0, 0, 5, 0]
    assert end == [0, 0, 0, 5, 5, 0]
    assert result.cycles == 5


@pytest.mark.parametrize("engine", ENGINES)
def test_priority_and_ready_time_break_ties(engine):
    b = builder()
    for _ in range(4):
        b.compute("u", 2, layer=0)
    p = b.build()
    p = dataclasses.replace(p, priority=np.array([2, 0, 1, 0]))
    result, start, end = run(engine, p)
    assert start == [6, 0, 4, 2]  # priority 0 (ids 1 then 3), then 1, then 2

    b = builder()
    first = b.compute("u", 10, layer=0, label="first")
    pre = b.compute("u", 3, layer=0, label="pre")  # runs after first; makes 'late' ready at 13
    b.transfer("c", 12, layer=0, label="early-dep")  # 3 cycles: makes 'early' ready at 3
    b.compute("u", 1, deps=[pre], layer=0, label="late")
    b.compute("u", 1, deps=[2], layer=0, label="early")
    p = dataclasses.replace(b.build(), priority=np.array([0, 0, 0, 0, 9]))
    result, start, end = run(engine, p)
    assert start[first] == 0 and start[pre] == 10
    assert start[4] == 13 and start[3] == 14  # ready at 3 beats ready at 13 despite priority 9


def test_programs_are_validated_with_the_task_named():
    b = builder()
    b.compute("u", 1, deps=[1], label="ping")
    b.compute("u", 1, deps=[0], label="pong")
    cyclic = b.build()
    for engine in ENGINES:
        with pytest.raises(ProgramError, match="cycle.*(ping|pong)"):
            get_engine(engine).run(cyclic)

    b = builder()
    b.compute("u", 1, label="fine")
    b.compute("u", -3, label="backwards")
    for engine in ENGINES:
        with pytest.raises(ProgramError, match="backwards.*negative"):
            get_engine(engine).run(b.build())

    b = builder()
    b.compute("u", 1, label="fine")
    b.transfer("c", 1, label="lost")
    lost = dataclasses.replace(b.build(), resource=np.array([0, 7], dtype=np.int32))
    for engine in ENGINES:
        with pytest.raises(ProgramError, match="lost.*unknown resource"):
            get_engine(engine).run(lost)
    with pytest.raises(ProgramError, match="unknown resource 'dram'"):
        builder().transfer("dram", 1, label="x")


def test_an_engine_never_hangs():
    """Without validation a cycle leaves tasks unfinished: an error names them and their waits."""
    from simulator.core import simulate as core
    from simulator.reference import simulate as reference

    b = builder()
    b.compute("u", 2, label="free")
    b.compute("u", 1, deps=[2], label="ping")
    b.compute("u", 1, deps=[1], label="pong")
    for sim in (core, reference):
        with pytest.raises(ProgramError, match=r"2 of 3 tasks are unfinished.*ping waits for pong"):
            sim(b.build(), validate=False)


@pytest.mark.parametrize("engine", ENGINES)
def test_stall_attribution(engine):
    """Layer 1 waits for layer 0 (dependency), for its unit (busy) and for its store (memory)."""
    b = builder(bytes_per_cycle=1.0, n_layers=3)
    a = b.compute("u", 10, layer=0, label="L0")  # 0..10
    ld = b.transfer("c", 14, layer=1, label="L1 load")  # 0..14
    c0 = b.compute("u", 5, deps=[a], layer=1, label="L1 c0")  # ready 10 (after L0): 10..15
    c1 = b.compute("u", 5, deps=[ld, c0], layer=1, label="L1 c1")  # ready 15, behind 'hog': 19..24
    hog = b.compute("u", 4, deps=[ld], layer=2, label="L2 c0")  # ready 14 < 15: wins the unit, 15..19
    c2 = b.compute("u", 2, deps=[hog], layer=1, label="L1 c2")  # ready 19, after c1: 24..26
    b.transfer("c", 3, deps=[c2, c1], layer=1, label="L1 store")  # 26..29
    result, start, end = run(engine, b.build())
    assert start == [0, 0, 10, 19, 15, 24, 26]
    assert end == [10, 14, 15, 24, 19, 26, 29]
    for layer in result.layers:
        assert layer.stall_cycles == (layer.stall_memory_cycles + layer.stall_dependency_cycles
                                      + layer.stall_busy_cycles)
    l1 = result.layers[1]
    assert (l1.start_cycle, l1.end_cycle, l1.compute_cycles) == (0, 29, 12)
    # c0: 10 waiting for L0; c1: ready at 15 = c0's end, 4 waiting for the unit; tail: store, 3
    assert (l1.stall_dependency_cycles, l1.stall_busy_cycles, l1.stall_memory_cycles) == (10, 4, 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_stall_kinds_on_a_known_schedule(engine):
    b = builder(bytes_per_cycle=1.0, n_layers=2)
    a = b.compute("u", 10, layer=0, label="L0 c")
    ld = b.transfer("c", 14, layer=1, label="L1 load")  # 0..14
    c0 = b.compute("u", 5, deps=[a], layer=1, label="L1 c0")  # ready 10: dependency 10, runs 10..15
    c1 = b.compute("u", 5, deps=[ld, c0], layer=1, label="L1 c1")  # ready 15, runs 15..20
    b.transfer("c", 3, deps=[c1], layer=1, label="L1 store")  # 20..23
    result, start, end = run(engine, b.build())
    assert start == [0, 0, 10, 15, 20] and end == [10, 14, 15, 20, 23]
    l1 = result.layers[1]
    assert (l1.compute_cycles, l1.stall_dependency_cycles, l1.stall_memory_cycles, l1.stall_busy_cycles) == \
        (10, 10, 3, 0)

    # the same, but L0's compute is a second consumer of the unit that L1 must wait behind
    b = builder(bytes_per_cycle=1.0, n_layers=2)
    ld = b.transfer("c", 4, layer=1, label="L1 load")  # 0..4
    b.compute("u", 10, layer=0, label="L0 c")  # 0..10, holds the unit
    b.compute("u", 5, deps=[ld], layer=1, label="L1 c0")  # ready 4 (memory 4), starts 10 (busy 6)
    result, start, end = run(engine, b.build())
    l1 = result.layers[1]
    assert (l1.stall_memory_cycles, l1.stall_busy_cycles, l1.stall_dependency_cycles) == (4, 6, 0)
    assert result.metrics()["stall_busy_cycles"] == 6


def test_occupancy_matches_transfer_cycles():
    rng = np.random.default_rng(0)
    bandwidths = [0.1, 0.3, 1.0, 2.5, 3.3, 7.0, 10.0, 1 / 3, 64.0, 1e-3, 128.5, math.inf]
    res = [Resource(f"c{i}", "channel", bytes_per_cycle=bw) for i, bw in enumerate(bandwidths)]
    b = ProgramBuilder(1e9, res)
    sizes = [0, 1, 3, 10, 33, 100, 1000, 12345, 10**9 + 7] + rng.integers(0, 10**7, 50).tolist()
    for i in range(len(res)):
        for s in sizes:
            b.transfer(f"c{i}", int(s))
    p = b.build()
    assert occupancy(p).tolist() == [transfer_cycles(int(p.nbytes[t]), bandwidths[p.resource[t]])
                                    for t in range(p.n_tasks)]


def test_kernels_are_cached_on_disk():
    from simulator.core import kernel

    assert type(kernel.run_events._cache).__name__ != "NullCache"


def test_analytical_engine_gives_a_layer_timeline():
    program = lower_workload(build_model("alexnet"), small_array(16, 16), MapperOptions(fidelity="layer"))
    result = get_engine("analytical").run(program)
    tl = result.timeline
    assert tl.level == "layer" and tl.n_slices == len(result.layers)
    assert tl.start.tolist() == [layer.start_cycle for layer in result.layers]
    assert "timeline" not in result.to_dict() and "timeline" not in result.metrics()


# -- real workloads against the analytical model (the foundation) -------------------------------------

@pytest.fixture(scope="module")
def graphs():
    return {name: build_model(name) for name in ("resnet18", "resnet50", "alexnet")}


def _both(program: LoweredProgram):
    numba = get_engine("numba").run(program)
    simpy = get_engine("simpy").run(program)
    a, b = numba.to_dict(), simpy.to_dict()
    assert a.pop("engine") == "numba" and b.pop("engine") == "simpy"
    assert a == b
    assert numba.timeline.start.tolist() == simpy.timeline.start.tolist()
    assert numba.timeline.end.tolist() == simpy.timeline.end.tolist()
    return numba


@pytest.mark.differential
@pytest.mark.parametrize("fidelity", ["layer", "tile"])
@pytest.mark.parametrize("model", ["resnet18", "resnet50", "alexnet"])
def test_unlimited_bandwidth_busy_equals_the_analytical_compute(graphs, model, fidelity):
    arch = small_array(32, 32) if model != "resnet50" else _preset_32x32("inf")
    program = lower_workload(graphs[model], arch, MapperOptions(fidelity=fidelity))
    analytical = get_engine("analytical").run(program)
    event = _both(program)
    assert [l.compute_cycles for l in event.layers] == [l.compute_cycles for l in analytical.layers]
    assert [l.compute_cycles for l in event.layers] == [info.compute_cycles for info in program.layers]
    busy = sum(l.compute_cycles for l in event.layers)
    if model == "alexnet":  # a chain: nothing overlaps, nothing waits
        assert event.cycles == busy == analytical.cycles
    else:  # branches may overlap on the array and the vector unit, never waiting for memory
        assert event.cycles <= busy
        assert sum(l.stall_memory_cycles for l in event.layers) == 0
    for layer in event.layers:
        assert layer.stall_cycles == (layer.stall_memory_cycles + layer.stall_dependency_cycles
                                      + layer.stall_busy_cycles)


def _preset_32x32(bandwidth: str):
    from architectures.presets import load_preset

    return load_preset("scalesim_32x32", {"memory.dram.bandwidth": bandwidth})


@pytest.mark.differential
@pytest.mark.parametrize("fidelity", ["layer", "tile"])
@pytest.mark.parametrize("model", ["resnet18", "alexnet"])
def test_constrained_bandwidth_shows_up_as_memory_stalls(graphs, model, fidelity):
    program = lower_workload(graphs[model], _preset_32x32("10 GB/s"), MapperOptions(fidelity=fidelity))
    event = _both(program)
    busy = sum(l.compute_cycles for l in event.layers)
    assert event.cycles > busy
    memory = sum(l.stall_memory_cycles for l in event.layers)
    assert memory > 0
    if model == "alexnet":  # a chain: layers follow each other, every extra cycle waits for memory
        assert sum(l.total_cycles for l in event.layers) == event.cycles
        assert memory == event.cycles - busy
    dram = next(r for r in event.resources if r.name == "dram")
    assert dram.bytes == sum(l.counters["dram_read_bytes"] + l.counters["dram_write_bytes"]
                             for l in event.layers)
    if fidelity == "tile":  # double buffering overlaps transfers with compute: no slower than layer
        layer_level = get_engine("numba").run(
            lower_workload(graphs[model], _preset_32x32("10 GB/s"), MapperOptions(fidelity="layer")))
        assert event.cycles <= layer_level.cycles
