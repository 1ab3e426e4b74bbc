"""What ``simulator.explain`` says about layers on a GPU or on PIM, and about chosen mappings.

Contract (each function reads the run's numbers and the mapper's annotations, never a constant):

- ``unit_kind(unit)``: ``array``, ``vector``, ``gpu``, ``pim``... without a device prefix.
- ``unit_roofline(arch, unit)``: the roofline of the unit a layer ran on: PIM's own (its MAC
  rate over all stacks, its internal bank bandwidth) for ``pim`` on a ``gpu_pim`` device, the
  device's (``arch.roofline()``) otherwise, with the sustained bandwidth the unit's model uses.
- ``launch_cycles(layer, plan, weight)``: the cycles of the layer's kernel launches (the
  ``OpPlan.overhead_cycles`` the GPU and PIM planners put before a kernel's body, times the
  steps a decode layer stands for), which the engines count as compute but which no faster unit
  shortens.
- ``model_sides(layer)``: the unit model's compute and memory cycles of a GPU kernel or PIM
  operator (``gpu_model_*`` / ``pim_model_*`` counters): which side of its roofline bounds it.
- ``gpu_mapping_text``, ``gpu_compute_advice``: a GPU kernel's mapping as the planner chose it
  (CTA tile, CTAs, waves on the SMs, main-loop iterations, or a GEMV-like kernel on the CUDA
  cores) and which of the efficiency model's losses costs a compute-bound kernel the most.
- ``pim_compute_advice``, ``launch_advice``: a PIM operator bound by its MAC units; a layer whose
  kernel launches take most of its time.
- ``mapping_choice(tiling, ...)``: what ``mapper.search`` or ``mapper.dataflow: auto`` chose for
  a layer on a systolic array, and what it was compared against (roofline estimates).
"""

from __future__ import annotations

import math
import re

from simulator.explain_format import _bytes, _num

__all__ = ["unit_kind", "unit_roofline", "launch_cycles", "model_sides", "gpu_mapping_text", "gpu_compute_advice",
           "pim_compute_advice", "launch_advice", "mapping_choice"]


def unit_kind(unit: str) -> str:
    """The kind of a layer's unit without its device prefix ("d0.gpu" -> "gpu")."""
    return unit.rsplit(".", 1)[-1]


def unit_roofline(arch, unit: str) -> tuple[float, float, float | None, str]:
    """(peak MAC/s, peak bytes/s, sustained bytes/s or None, label) of the unit a layer ran on:
    label "PIM" for PIM, "" for the device. The sustained bandwidth is what a GPU's or PIM's model
    moves bytes at (``kernel.hbm_efficiency`` or ``pim.bandwidth_efficiency`` of the peak); None
    where the model uses the peak."""
    if unit_kind(unit) == "pim" and hasattr(arch, "pim_roofline"):
        peak, bandwidth = arch.pim_roofline()
        return peak, bandwidth, arch.pim_bandwidth_bytes_per_s, "PIM"
    peak, bandwidth = arch.roofline()
    return peak, bandwidth, getattr(arch, "hbm_sustained_bytes_per_s", None), ""


def launch_cycles(layer, plan, weight: float) -> int:
    """Cycles of the layer's kernel launches (module docstring); 0 without a plan."""
    per = getattr(plan, "overhead_cycles", 0) or 0
    return int(min(layer.compute_cycles, round(per * weight)))


def model_sides(layer) -> tuple[float, float] | None:
    """(compute cycles, memory cycles) of the unit model for the layer's kernel(s), or None."""
    for prefix in ("gpu_model", "pim_model"):
        c = layer.counters.get(f"{prefix}_compute_cycles")
        m = layer.counters.get(f"{prefix}_memory_cycles")
        if c is not None and m is not None:
            return float(c), float(m)
    return None


# ---- GPU kernels ---------------------------------------------------------------------------------

def _cta(tiling, dataflow: str | None) -> tuple[int, int, int] | None:
    """The CTA tile of a GPU kernel, or None (a GEMV-like kernel on the CUDA cores): from the
    layer's dataflow (the gpu planner's ``cta TMxTNxTK``), else from its ``Tiling``."""
    for text in (dataflow or "", getattr(tiling, "chosen_by", "") or ""):
        found = re.search(r"(?:cta|CTA tile) (\d+)x(\d+)x(\d+)", text)
        if found:
            return tuple(int(x) for x in found.groups())
    return None


def _gpu_grid(tiling, arch, tile: tuple[int, int, int]) -> dict:
    fp = tiling.plan
    tm, tn, tk = tile
    ctas = fp.folds
    waves = math.ceil(ctas / arch.sms)
    return {"tile": (tm, tn, tk), "ctas": ctas, "waves": waves, "last": ctas - (waves - 1) * arch.sms,
            "k_iters": math.ceil(fp.gemm.K / tk), "sms": arch.sms}


def gpu_mapping_text(tiling, arch, dataflow: str | None, per_step: str) -> str:
    """The mapping the gpu planner chose (module docstring)."""
    candidates = re.search(r"of (\d+) candidates", tiling.chosen_by or "")
    among = f" (the fastest of {candidates.group(1)} tiles and the CUDA cores)" if candidates else ""
    tile = _cta(tiling, dataflow)
    if tile is None:
        return "a GEMV-like kernel on the CUDA cores (faster here than any tensor-core tile)"
    g = _gpu_grid(tiling, arch, tile)
    tm, tn, tk = g["tile"]
    if g["last"] == g["sms"]:
        last = ""
    elif g["waves"] == 1:
        last = f" ({g['last']:,} of them busy)"
    else:
        last = f", the last with {g['last']:,}"
    return (f"CTA tile {tm}x{tn}x{tk}{among}: {g['ctas']:,} CTAs{per_step} in {g['waves']:,} wave"
            f"{'s' if g['waves'] != 1 else ''} on {g['sms']} SMs{last}, {g['k_iters']:,} main-loop "
            f"iteration{'s' if g['k_iters'] != 1 else ''} each")


def gpu_compute_advice(layer, tiling, arch, op, compute: float) -> tuple[str, str]:
    """A compute-bound GPU kernel: its share of the tensor-core peak and the loss that costs most.
    ``compute``: the kernel bodies' cycles (launches excluded)."""
    tile = None if tiling is None else _cta(tiling, layer.dataflow)
    if tile is None:
        rate = arch.vector_ops_per_s / arch.freq_hz
        util = layer.macs / (compute * rate) if compute else 0.0
        return "gpu_cuda_cores", (f"a GEMV-like kernel on the CUDA cores does {layer.macs:,} MACs at {util:.0%} "
                                  f"of their FMA rate: a larger M (batch) would move it onto the tensor cores")
    prec = arch.precision
    if op is not None and op.is_matrix:
        second = op.inputs[1] if len(op.inputs) > 1 else op.weights[0]
        prec, _ = arch.tensor_precision(op.inputs[0].precision, second.precision)
    peak = (arch.tensor.macs_per_s(prec) or arch.peak_macs_per_s) / arch.freq_hz
    util = layer.macs / (compute * peak) if compute else 0.0
    if util >= 0.8:
        return "peak", (f"its CTAs keep the tensor cores at {util:.0%} of their {prec} peak: only a faster "
                        f"GPU (more SMs, a higher clock) makes it faster")
    g = _gpu_grid(tiling, arch, tile)
    tm, tn, tk = g["tile"]
    overhead = arch.kernel.tile_overhead_ksteps
    fp = tiling.plan
    a_elem, b_elem = _element_bytes(op)
    # one main-loop iteration of a full wave: the tile's MMAs, or the L2 feeding its panels
    mma = tm * tn * tk / (peak * arch.freq_hz / arch.sms * arch.kernel.tensor_efficiency)
    l2 = arch.memory.l2.bandwidth_bytes_per_s
    feed_bytes = (min(tm, fp.gemm.M) * a_elem + min(tn, fp.gemm.N) * b_elem) * tk
    feed = feed_bytes / (l2 / arch.sms) if math.isfinite(l2) else 0.0
    losses = {
        "prologue": 1 - g["k_iters"] / (g["k_iters"] + overhead),
        "waves": 1 - g["ctas"] / (g["waves"] * g["sms"]),
        "padding": 1 - (layer.mapping_efficiency if layer.mapping_efficiency is not None else 1.0),
        "main loop": 1 - arch.kernel.tensor_efficiency,
        "l2 feed": 1 - mma / max(mma, feed),
    }
    worst = max(losses, key=losses.get)
    head = f"its CTAs keep the tensor cores at {util:.0%} of their {prec} peak"
    K = fp.gemm.K
    if worst == "prologue":
        why = (f"K={K:,} is only {g['k_iters']:,} main-loop iteration{'s' if g['k_iters'] != 1 else ''} of "
               f"{tk}, and each CTA's prologue and epilogue cost {overhead:g} more "
               f"(kernel.tile_overhead_ksteps): {losses[worst]:.0%} of a CTA's time; a longer reduction "
               f"per CTA amortizes it")
    elif worst == "waves":
        why = (f"{g['ctas']:,} CTAs on {g['sms']} SMs make {g['waves']:,} waves and the last holds "
               f"{g['last']:,}: {losses[worst]:.0%} of the SM-time is idle; a shape (or batch) giving a "
               f"multiple of {g['sms']} CTAs fills it")
    elif worst == "padding":
        why = (f"M and N are padded to the {tm}x{tn} tile: {losses[worst]:.0%} of the tiles' MACs are "
               f"padding; dimensions that are multiples of the tile avoid it")
    elif worst == "l2 feed":
        why = (f"the L2 cache feeds each SM {_num(l2 / arch.sms)}B/s, and a {tm}x{tn}x{tk} step needs "
               f"{feed_bytes / 1024:.3g} KiB of A and B: the tensor cores wait {losses[worst]:.0%} of "
               f"every main-loop iteration (memory.l2.bandwidth)")
    else:
        why = (f"the main loop sustains {arch.kernel.tensor_efficiency:.0%} of the peak "
               f"(kernel.tensor_efficiency)")
    others = ", ".join(f"{_LOSS[k]} {v:.0%}" for k, v in losses.items() if k != worst and v >= 0.005)
    return "gpu_compute", f"{head}; {why}" + (f" (other modelled losses: {others})" if others else "")


_LOSS = {"prologue": "CTA prologue/epilogue", "waves": "partial last wave", "padding": "tile padding",
         "main loop": "main-loop efficiency", "l2 feed": "L2 feed"}


def _element_bytes(op) -> tuple[float, float]:
    """Bytes per element of a matrix op's two operands (2 each without the op)."""
    if op is None or not op.is_matrix:
        return 2.0, 2.0
    second = op.inputs[1] if len(op.inputs) > 1 else op.weights[0]
    return float(op.inputs[0].element_bytes), float(second.element_bytes)


# ---- PIM operators, kernel launches ------------------------------------------------------------

def pim_compute_advice(layer, arch, intensity: float | None, ridge: float | None,
                       sides: tuple[float, float] | None) -> tuple[str, str]:
    """A PIM operator bound by its MAC units rather than its banks."""
    peak = arch.pim_macs_per_s
    compute, memory = sides or (layer.compute_cycles, 0.0)
    util = layer.macs * arch.freq_hz / (compute * peak) if compute and layer.macs else 0.0
    above = ""
    if intensity is not None and ridge is not None:
        above = f": {_num(intensity)} MAC/B is at or above PIM's ridge {_num(ridge)} MAC/B"
    if not layer.macs:
        return "pim_compute", (f"{layer.vector_ops:,} element operations take {compute:,.0f} cycles on PIM's "
                               f"vector units, its banks {memory:,.0f}: more PIM vector throughput "
                               f"(architecture.pim.vector_ops_per_cycle) helps")
    return "pim_compute", (f"PIM's MAC units ({_num(peak)} MAC/s over {arch.pim.stacks} stacks) need "
                           f"{compute:,.0f} cycles, its banks {memory:,.0f}{above}, so its MACs set the pace "
                           f"at {util:.0%} of their rate; the xPU may run it faster "
                           f"(mapper.placement_overrides: {{\"{_pattern(layer.name)}\": xpu}})")


def _pattern(name: str) -> str:
    """A placement-override pattern for a layer name: every layer's copy of it."""
    base = re.sub(r"^(prefill|decode|mb\d+):", "", name)
    return re.sub(r"layers\.\d+\.", "*.", base)


def launch_advice(layer, launch: int, per_launch: int, freq_hz: float, mapper) -> tuple[str, str]:
    """A layer whose kernel launches take most of its time."""
    n = max(1, round(launch / per_launch)) if per_launch else 1
    share = launch / layer.total_cycles if layer.total_cycles else 0.0
    each = per_launch / freq_hz * 1e6
    what = f"kernel launch: {share:.0%} of its time ({n:,} launch{'es' if n != 1 else ''} of {each:.3g} us"
    what += ", one per decode step)" if layer.name.startswith("decode:") and n > 1 else ")"
    attention = getattr(mapper, "attention", None)
    if ".attn." in layer.name and attention == "unfused":
        fuse = "fusing kernels (mapper.attention: fused runs QK^T, softmax and AV as one kernel, one launch)"
    elif layer.macs == 0 and getattr(mapper, "fuse_activations", True) is False:
        fuse = "fusing kernels (mapper.fuse_activations: true applies it in its producer's kernel)"
    else:
        fuse = "fusing kernels (one launch for several operators)"
    work = (f"{_num(layer.macs / n)} MACs" if layer.macs else f"{_num(layer.vector_ops / n)} element operations")
    return "launch", (f"{what}{', each' if n > 1 else ''} for {work}: {fuse} or a bigger batch (more work "
                      f"per launch) amortizes it")


# ---- mapping choices on a systolic array -------------------------------------------------------

_ORDER = {"cols_outer": "column folds outer", "rows_outer": "row folds outer"}


def mapping_choice(tiling, op, arch, residency, mapper, estimate) -> str | None:
    """What ``mapper.search`` or ``mapper.dataflow: auto`` chose, against what (module docstring).
    ``estimate(dataflow, nest)`` -> (cycles, off-chip bytes): the mapper's roofline estimate."""
    why = getattr(tiling, "chosen_by", "") or ""
    if why.startswith("auto:"):
        scores = re.findall(r"(os|ws|is) (\d+)", why)
        listed = ", ".join(f"{df} {int(c):,}" for df, c in scores) if scores else why[5:].strip()
        return (f"mapper.dataflow: auto chose {tiling.dataflow}, the fastest by the mapper's roofline "
                f"estimate ({listed} cycles)")
    if not why.startswith("search:"):
        return None
    from mappers.annotations import DEFAULT_NEST
    from mappers.traffic import InvalidMapping

    counts = (tiling.candidates, tiling.rejected)
    among = (f"compared {counts[0]:,} candidates ({counts[1]:,} rejected as invalid) and "
             if None not in counts else "")
    wanted = getattr(mapper, "dataflow", None) or arch.dataflow
    default_df = arch.dataflow if wanted == "auto" else wanted
    nest = tiling.nest
    chosen = estimate(tiling.dataflow, nest)
    text = (f"mapper.search {among}chose {tiling.dataflow}, {_ORDER.get(nest.order, nest.order)}, block "
            f"{nest.block}: about {chosen[0]:,} cycles and {_bytes(chosen[1])} off chip (roofline estimate)")
    if (tiling.dataflow, nest) == (default_df, DEFAULT_NEST):
        return text + "; that is the default mapping: no candidate was faster"
    try:
        default = estimate(default_df, DEFAULT_NEST)
    except InvalidMapping as exc:  # the default does not fit the buffers: say why it lost
        return text + f", against the default {default_df}, column folds outer, block 1: invalid ({exc})"
    return (text + f", against the default {default_df}, column folds outer, block 1: {default[0]:,} cycles "
            f"and {_bytes(default[1])}")
