"""Lowering: planned ``OpGraph`` -> ``LoweredProgram`` (tasks on units and channels).

Each operator that runs has an ``OpPlan`` (``mappers.plan``): tiles, and per tile the bytes
loaded and stored over each off-chip channel. Per tile the lowering emits one load per channel
that moves bytes (off-chip -> SRAM), the compute, and one store per channel (SRAM -> off-chip).
Double buffering is written as dependencies: with two buffer halves, the loads of tile t wait for
compute t-2 (its half is free again), compute t waits for its loads and for the stores of tile
t-2 (the output half is drained), where t counts the unit's tiles in program order across
layers: the next layer's first loads overlap the previous layer's last compute, and no load
runs further ahead than the buffers allow. Each unit runs its tiles in program order; on each
channel, loads are issued in order and stores are issued in order (the channel itself serves
whatever is ready first-come first-served). The first task of a layer that starts also waits
for the last store (or compute, when its output stays on chip) of every layer that produces its
inputs. Per-tile bytes partition the layer's totals exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from mappers.annotations import LinkPlan, OpPlan, Placement
from mappers.pipeline import MapperOptions, PassError
from simulator.program import LayerInfo, LoweredProgram, ProgramBuilder, Resource
from workloads.graph import OpGraph

__all__ = ["lower", "RESOURCES", "template_resources", "systolic_resources"]

RESOURCES: dict[str, Callable[..., list[Resource]]] = {}


def template_resources(template: str):
    """Register the function giving a template's units and channels."""

    def deco(fn):
        RESOURCES[template] = fn
        return fn

    return deco


@template_resources("systolic_array")
def systolic_resources(arch) -> list[Resource]:
    out = [Resource("array", "unit", 1, peak_macs_per_cycle=arch.pes), Resource("vector", "unit", 1)]
    for name, tier in arch.offchip_tiers().items():
        out.append(Resource(name, "channel", bytes_per_cycle=tier.bandwidth_bytes_per_s / arch.freq_hz,
                            latency_cycles=int(math.ceil(tier.latency_s * arch.freq_hz - 1e-9)),
                            src=name, dst="sram"))
    return out


class _UnitQueue:
    """One unit's tiles in program order: double buffering continues across layer boundaries."""

    def __init__(self) -> None:
        self.computes: list[int] = []
        self.stores: list[list[int]] = []


def _devices(graph: OpGraph) -> list[int]:
    devices = {op.device for op in graph.ops()}
    for op in graph.ops():
        if op.kind == "collective":
            devices.update(op.group if op.collective == "all_to_all" else (op.device,))
    return sorted(devices)


def _system_resources(arch, graph: OpGraph) -> tuple[list[Resource], Callable[[int, str], str]]:
    """The template's units and channels, once per device (``d<k>.`` prefixed when there is more
    than one device or any collective), and a link channel per device."""
    base = RESOURCES[arch.template](arch)
    devices = _devices(graph)
    collectives = any(op.kind == "collective" for op in graph.ops())
    if len(devices) == 1 and not collectives:
        return base, lambda device, name: name
    link = graph.meta.get("link")
    if collectives and not link:
        raise PassError("the graph has collectives (it was split across devices) but no link is "
                        "defined: give the experiment a system: {link: {bandwidth, latency}} section")
    out = []
    for d in devices:
        for r in base:
            out.append(dataclasses.replace(r, name=f"d{d}.{r.name}"))
        if link:
            out.append(Resource(f"d{d}.link", "channel",
                                bytes_per_cycle=link["bandwidth_bytes_per_s"] / arch.freq_hz,
                                latency_cycles=int(math.ceil(link.get("latency_s", 0.0) * arch.freq_hz - 1e-9)),
                                src=f"d{d}", dst="link"))
    return out, lambda device, name: f"d{device}.{name}"


def lower(graph: OpGraph, arch, options: MapperOptions) -> LoweredProgram:
    """Build the task program for a planned graph (see the module docstring)."""
    resources, at = _system_resources(arch, graph)
    b = ProgramBuilder(arch.freq_hz, resources)
    queues: dict[str, _UnitQueue] = {}
    last_load: dict[str, int | None] = {}  # per channel: loads are issued in order
    last_store: dict[str, int | None] = {}  # per channel: stores are issued in order
    microbatches = int((graph.meta.get("parallelism") or {}).get("microbatches", 1))
    for mb in range(microbatches):
        prefix = f"mb{mb}:" if microbatches > 1 else ""
        ready_after: dict[str, list[int]] = {}  # op name -> tasks after which its output is readable
        for op in graph.ops():
            placement = graph.get(op.name, Placement).unit
            deps_in = [t for q in graph.predecessors(op.name) for t in ready_after.get(q, [])]
            if placement in ("none", "fused"):  # a view or a fused op: its output is its inputs'
                ready_after[op.name] = deps_in
                continue
            if placement == "link":
                ready_after[op.name] = _lower_collective(b, graph.get(op.name, LinkPlan), op, prefix,
                                                         deps_in, at, last_store)
                continue
            p: OpPlan = graph.get(op.name, OpPlan)
            unit = at(op.device, p.unit)
            index = len(b.layers)
            b.layers.append(LayerInfo(
                index=index, name=prefix + op.name, kind=op.kind, unit=unit, dataflow=p.dataflow,
                block=op.block, macs=op.macs, vector_ops=p.vector_ops, compute_cycles=p.compute_cycles,
                folds=p.folds, mapping_efficiency=p.mapping_efficiency,
                compute_utilization=p.compute_utilization, peak_macs_per_cycle=p.peak_macs_per_cycle,
                gemm=p.gemm, counters=p.counters, fused=p.fused, overhead_cycles=p.overhead_cycles,
                mapping=p.mapping))
            q = queues.setdefault(unit, _UnitQueue())
            channels_in = sorted(p.loads)
            channels_out = sorted(p.stores)
            final_stores: dict[str, int] = {}
            producer_deps = deps_in
            for t in range(p.tiles):
                g = len(q.computes)  # this tile's position in the unit's program order
                deps = list(producer_deps) + [q.computes[g - 2] if g >= 2 else None]
                loads = []
                for ch in channels_in:
                    nbytes = int(p.loads[ch][t])
                    if nbytes > 0:
                        chan = at(op.device, ch)
                        ld = b.transfer(chan, nbytes, layer=index, deps=deps + [last_load.get(chan)],
                                        count=int(p.counts[t]), label=f"{prefix}{op.name} load {t}" +
                                        (f" {ch}" if len(channels_in) > 1 else ""))
                        last_load[chan] = ld
                        loads.append(ld)
                cdeps = loads + [q.computes[g - 1] if g else None] + (q.stores[g - 2] if g >= 2 else [])
                if not loads:
                    cdeps += deps
                producer_deps = []  # taken by this tile's first task
                c = b.compute(unit, int(p.cycles[t]), layer=index, deps=cdeps, count=int(p.counts[t]),
                              label=f"{prefix}{op.name} compute {t}")
                q.computes.append(c)
                stores = []
                for ch in channels_out:
                    nbytes = int(p.stores[ch][t])
                    if nbytes > 0:
                        chan = at(op.device, ch)
                        st = b.transfer(chan, nbytes, layer=index, deps=[c, last_store.get(chan)],
                                        count=int(p.counts[t]), label=f"{prefix}{op.name} store {t}" +
                                        (f" {ch}" if len(channels_out) > 1 else ""))
                        last_store[chan] = st
                        final_stores[ch] = st
                        stores.append(st)
                q.stores.append(stores)
            ready_after[op.name] = list(final_stores.values()) or [q.computes[-1]]
    return b.build(meta={"graph": graph.name, "fidelity": options.fidelity,
                         "residency": dict(graph.meta.get("residency", {})),
                         "tensor_homes": dict(graph.meta.get("tensor_homes", {})),
                         "devices": _devices(graph), "microbatches": microbatches})


def _lower_collective(b: ProgramBuilder, plan: LinkPlan, op, prefix: str, deps: list[int],
                      at: Callable[[int, str], str], last_store: dict) -> list[int]:
    """Each (device, bytes, steps) of the plan: ``steps`` chained transfers on that device's link.
    The collective's result is ready when every chain has finished."""
    index = len(b.layers)
    b.layers.append(LayerInfo(
        index=index, name=prefix + op.name, kind=op.kind, unit=at(op.device, "link"), dataflow=None,
        block=op.block, macs=0, vector_ops=op.vector_ops, compute_cycles=0, folds=0,
        mapping_efficiency=None, compute_utilization=None, peak_macs_per_cycle=0, gemm=None,
        counters=plan.counters))
    ends = []
    for device, nbytes, steps in plan.transfers:
        chan = at(device, "link")
        prev = None
        per = [nbytes // steps + (1 if i < nbytes % steps else 0) for i in range(steps)]
        for i, part in enumerate(per):
            prev = b.transfer(chan, part, layer=index, deps=deps + [prev, last_store.get(chan) if i == 0 else None],
                              label=f"{prefix}{op.name} {op.collective} d{device}" + (f" step {i}" if steps > 1 else ""))
        last_store[chan] = prev
        ends.append(prev)
    return ends or deps
