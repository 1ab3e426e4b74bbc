"""The serving plan and its result types: what a serving experiment runs and what it returns.

Contract: ``build_serving_workload(spec, arch, policy, system, file=)`` validates a
``workload.serving`` section against the architecture (model, requests, KV-cache capacity: a
request that could never fit, or longer than a learned position table, is a ``ConfigError``
naming the key) and returns the graph users inspect (a decode iteration at the full batch), the
resolved section and a ``ServingPlan``. ``kv_capacity_tokens`` is the tokens the whole system's
KV cache holds: ``kv_capacity_tokens`` if set, else a per-device size (``kv_capacity``) or, by
default, ``HBM_USABLE_FRACTION`` of the device's memory minus its weights, divided by a token's
KV bytes on a device, times the devices holding separate caches (expert parallelism). A
``ServingResult`` is a ``SimResult`` with one ``RequestRecord`` per request;
``requests_csv``/``write_requests_csv`` give them as CSV (``REQUEST_COLUMNS``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workloads.errors import ConfigError, Problem, Problems
from workloads.graph import OpGraph, PrecisionPolicy
from workloads.llm_config import LLMConfig, kv_cache_bytes, llm_param_counts
from workloads.llm_parallel import Parallelism
from workloads.precision import storage_bytes
from workloads.serving import IterationShape, Request, ServingSpec, build_iteration, request_stream
from simulator.result import SimResult

if TYPE_CHECKING:
    from architectures.base import Architecture
    from architectures.system import SystemSpec

HBM_USABLE_FRACTION = 0.9  # of a device's HBM, for weights + KV cache (the rest: activations,
# workspace), as vLLM's default gpu_memory_utilization = 0.9 (vllm/engine/arg_utils.py)
REQUEST_COLUMNS = ("id", "arrival_s", "input_tokens", "output_tokens", "admitted_s", "first_token_s",
                   "finished_s", "queue_s", "ttft_s", "e2e_s", "mean_tbt_s")


@dataclass(frozen=True)
class ServingPlan:
    """What a serving experiment runs (built by ``build_serving_workload``): the section, the
    model, the requests in arrival order, and how the model is spread over ``devices``."""

    spec: ServingSpec
    cfg: LLMConfig
    requests: tuple[Request, ...]
    precision: PrecisionPolicy
    parallelism: Parallelism
    link: dict | None
    expert_load: Any
    kv_capacity_tokens: int
    devices: int

    def iteration_graph(self, shape: IterationShape, layers: int | None = None) -> OpGraph:
        """The graph of one iteration of ``shape`` (``layers``: a model with that many decoder
        layers), with the system's link if it has several devices."""
        g = build_iteration(self.cfg, shape, precision=self.precision, parallelism=self.parallelism,
                            expert_load=self.expert_load, layers=layers)
        if self.link:
            g.meta["link"] = self.link
        return g


@dataclass(frozen=True)
class RequestRecord:
    """What happened to one request, times in seconds from the start of the run."""

    id: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    admitted_s: float
    first_token_s: float
    finished_s: float
    mean_tbt_s: float  # 0 for a request with one output token

    def row(self) -> dict[str, float]:
        """The record as a ``REQUEST_COLUMNS`` row (with its derived durations)."""
        return {"id": self.id, "arrival_s": self.arrival_s, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "admitted_s": self.admitted_s,
                "first_token_s": self.first_token_s, "finished_s": self.finished_s,
                "queue_s": self.admitted_s - self.arrival_s, "ttft_s": self.first_token_s - self.arrival_s,
                "e2e_s": self.finished_s - self.arrival_s, "mean_tbt_s": self.mean_tbt_s}


@dataclass(frozen=True)
class ServingResult(SimResult):
    """A ``SimResult`` of a serving run: layers and resources summed over all iterations (every
    device), and one record per request."""

    requests: tuple[RequestRecord, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["requests"] = [r.row() for r in self.requests]
        return out

    def extra_files(self) -> dict[str, str]:
        return {"requests.csv": requests_csv(self)}


def requests_csv(result: ServingResult) -> str:
    """The request-level trace as CSV text (one row per request, ``REQUEST_COLUMNS``)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=REQUEST_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in result.requests:
        w.writerow(r.row())
    return buf.getvalue()


def write_requests_csv(result: ServingResult, path: str | Path) -> Path:
    """Write the request-level trace (one row per request, ``REQUEST_COLUMNS``)."""
    from simulator.report import atomic_write

    path = Path(path)
    atomic_write(path, requests_csv(result))
    return path


# ---- building the plan ---------------------------------------------------------------------------

def _config(spec: ServingSpec, file: str | None) -> LLMConfig:
    from workloads.llm_config import load_llm_config, shipped_config
    from workloads.serving import resolve_path

    if spec.config is not None:
        return load_llm_config(resolve_path(spec.config, file))
    from workloads.registry import MODELS, model_names

    model_names()
    entry = MODELS.get(spec.model)
    if entry is not None and entry.family != "llm":
        raise ConfigError(Problem(file, "workload.serving.model", f"'{spec.model}' is a {entry.family} "
                                  "model; serving runs LLMs (decoders)"))
    try:
        return shipped_config(spec.model)
    except ConfigError as exc:
        raise ConfigError([Problem(file, "workload.serving.model", p.message, None, p.hint)
                           for p in exc.problems]) from None


def _device_weight_bytes(cfg: LLMConfig, par: Parallelism, precision: PrecisionPolicy) -> int:
    """Weight bytes one device holds: tensor parallelism splits everything but the embedding
    tables; expert parallelism replicates the non-expert weights and splits the experts."""
    counts = llm_param_counts(cfg)
    total, experts, embedding = counts["total"], counts["experts"], counts["embedding"]
    if par.tensor > 1:
        params = (total - embedding) / par.tensor + embedding
    elif par.expert > 1:
        params = total - experts + experts / par.expert
    else:
        params = total
    return storage_bytes(int(math.ceil(params)), precision.weights, precision.group_size,
                         precision.scale_bits)


def kv_capacity_tokens(spec: ServingSpec, cfg: LLMConfig, arch: Architecture, par: Parallelism,
                       precision: PrecisionPolicy, devices: int, file: str | None) -> int:
    """Tokens the whole system's KV cache holds (see ``ServingSpec.kv_capacity`` and the module
    docstring); a size that does not parse or weights that do not fit are a ``ConfigError``."""
    if spec.kv_capacity_tokens is not None:
        return spec.kv_capacity_tokens
    per_token = kv_cache_bytes(cfg, 1, 1, precision)  # all layers, all KV heads
    if par.tensor > 1:  # each device keeps its KV heads (one, replicated, if fewer heads than devices)
        _, local_kv = par.local_heads(cfg)
        per_token = per_token * local_kv // cfg.num_key_value_heads
        holders = 1
    else:  # a request's cache lives on one device (data-parallel attention, or one device)
        holders = par.expert if par.expert > 1 else 1
    if spec.kv_capacity not in (None, "auto"):
        from architectures.units import UnitError, parse_quantity

        try:
            free = parse_quantity(spec.kv_capacity, "size")
        except (UnitError, TypeError) as exc:
            raise ConfigError(Problem(file, "workload.serving.kv_capacity", f"expected 'auto' or a size "
                                      f"like '40 GB' (per device), found {spec.kv_capacity!r} ({exc})")) from None
        if not free > 0:
            raise ConfigError(Problem(file, "workload.serving.kv_capacity", f"expected a size > 0, "
                                      f"found {spec.kv_capacity!r}"))
    else:
        hbm = sum(t.size_bytes for t in arch.offchip_tiers().values())
        if not math.isfinite(hbm):
            return 2 ** 62
        weights = _device_weight_bytes(cfg, par, precision)
        free = HBM_USABLE_FRACTION * hbm - weights
        if free <= 0:
            raise ConfigError(Problem(file, "workload.serving.kv_capacity", (
                f"'{cfg.name}' does not fit: a device holds {weights / 1e9:.1f} GB of weights, more than "
                f"{HBM_USABLE_FRACTION:g} x its {hbm / 1e9:.0f} GB of memory (use more devices)")))
    return int(free // per_token) * holders


def build_serving_workload(spec: ServingSpec, arch: Architecture, policy: PrecisionPolicy,
                           system: SystemSpec | None, *,
                           file: str | None = None, expert_load: Any = None) -> tuple[OpGraph, dict, ServingPlan]:
    """The graph users inspect (a decode iteration at the full batch), the resolved section, and
    the plan (see the module docstring)."""
    probs = Problems(file)
    cfg = _config(spec, file)
    if cfg.is_encoder:
        probs.add("workload.serving.model", f"'{cfg.name}' is an encoder: it generates no tokens")
        probs.raise_if_any()
    par = Parallelism(**system.parallelism.model_dump()) if system is not None and system.devices > 1 else Parallelism()
    if par.pipeline > 1:
        probs.add("system.parallelism.pipeline", "serving runs tensor and expert parallelism; pipeline "
                  "stages are not modelled for serving")
    probs.raise_if_any()
    requests = request_stream(spec, file=file)
    devices = system.devices if system is not None else 1
    capacity = kv_capacity_tokens(spec, cfg, arch, par, policy, devices, file)
    limit = cfg.max_position_embeddings if cfg.learned_positions else None
    for r in requests:
        need = r.input_tokens + r.output_tokens
        where = f"request {r.id}" + (f" (line {r.line} of {spec.arrival.trace})" if r.line is not None else "")
        if need > capacity:
            probs.add("workload.serving.kv_capacity", f"{where} needs {need} tokens of KV cache, more "
                      f"than the system holds ({capacity}): it could never be admitted")
        if limit is not None and need > limit:
            probs.add("workload.serving.input_length", f"{where}: {need} tokens exceed "
                      f"max_position_embeddings {limit} of '{cfg.name}' (learned position table)")
        if len(probs.items) >= 5:
            break
    probs.raise_if_any()
    plan = ServingPlan(spec=spec, cfg=cfg, requests=tuple(requests), precision=policy, parallelism=par,
                       link=system.link.model_dump() if system is not None and system.link is not None else None,
                       expert_load=expert_load, kv_capacity_tokens=capacity, devices=devices)
    mean_in = int(round(sum(r.input_tokens for r in requests) / len(requests)))
    batch = min(spec.max_batch, len(requests))
    graph = plan.iteration_graph(IterationShape(0, 1, batch, mean_in))
    from workloads.serving import resolve_path

    dumped = spec.model_dump(mode="json")
    if spec.config is not None:  # paths as found, so the resolved file loads from anywhere
        dumped["config"] = str(resolve_path(spec.config, file).resolve())
    if spec.arrival.trace is not None:
        dumped["arrival"]["trace"] = str(resolve_path(spec.arrival.trace, file).resolve())
    resolved = {"serving": dumped, "phase": "serving"}
    return graph, resolved, plan

