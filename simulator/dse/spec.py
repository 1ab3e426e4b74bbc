"""The ``sweep:`` and ``search:`` sections of an experiment file, and their validation.

Contract: ``SweepField`` and ``SearchField`` are the types of ``ExperimentSpec.sweep`` and
``ExperimentSpec.search``. Pydantic checks their shape; an after-validator then checks their
meaning against the sections validated before them (every dotted path resolves against the
architecture template, ``WorkloadSpec`` or ``MapperOptions``; lists are not empty; ranges are
ordered and in the field's unit; objectives and constraints parse), so that ``tessera validate``
and ``load_experiment`` reject a bad sweep before anything runs. ``simulator.dse.study`` repeats
the checks against the built architecture and reports each problem at its exact line.

Metric names in objectives and constraints are checked by ``simulator.dse.study`` (it may need
to simulate the base experiment once to learn which metrics it produces).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, ValidationInfo

from workloads.errors import did_you_mean
from workloads.schema import FieldProblems, Schema, resolve_path

__all__ = ["RangeSpec", "RandomSpec", "ReportSpec", "SweepSpec", "SearchSpec", "SweepField", "SearchField",
           "Param", "Objective", "Constraint", "resolve_param", "check_section", "parse_objective",
           "parse_constraint", "template_of", "SECTIONS", "METRIC_UNIT_KINDS"]

SECTIONS = ("architecture", "workload", "mapper", "engine")
# metric name suffix -> unit kind of the quantity (for constraint bounds written with units)
METRIC_UNIT_KINDS = {"_bytes": "size", "_s": "time", "_w": "power", "_mm2": "area", "_pj": "energy",
                     "_hz": "frequency"}


class RangeSpec(Schema):
    """A numeric range: ``{low, high, step?, log?}``; bounds may carry the field's unit."""

    low: float | int | str = Field(description="lowest value (inclusive)")
    high: float | int | str = Field(description="highest value (inclusive)")
    step: float | int | str | None = Field(None, description="grid step from low (not with log)")
    log: bool = Field(False, description="sample log-uniformly")


def _choices(value: Any) -> list:
    if isinstance(value, list):
        return value
    hint = f" (write [{value!r}] for one value)" if not isinstance(value, dict) else ""
    raise ValueError(f"expected a list of values, found {value!r}{hint}")


def _dimension(value: Any) -> list | RangeSpec:
    """A list of choices, or a range {low, high, step?, log?} (as a ``RangeSpec``)."""
    if isinstance(value, (list, RangeSpec)):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a list of choices or a range {{low, high, step?, log?}}, found "
                         f"{value!r}" + (f" (write [{value!r}] for one value)" if value is not None else ""))
    names = list(RangeSpec.model_fields)
    items = [(k, f"unknown key '{k}'" + (f" (did you mean '{h}'?)" if (h := _close(k, names)) else ""))
             for k in value if k not in names]
    items += [(k, "required key is missing") for k in ("low", "high") if k not in value]
    if items:
        raise FieldProblems(items)
    try:
        return RangeSpec.model_validate(value)
    except ValidationError as exc:
        raise FieldProblems([(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]) from None


def _close(name: str, names: list[str]) -> str | None:
    hint = did_you_mean(name, names)
    return hint.split("'")[1] if hint else None


Choices = Annotated[Any, BeforeValidator(_choices)]
Dimension = Annotated[Any, BeforeValidator(_dimension)]


class RandomSpec(Schema):
    """``random:``: ``n`` points drawn with ``seed`` from lists (uniform choice) or ranges."""

    n: int = Field(gt=0, description="number of points to draw")
    seed: int = Field(0, description="random seed (the same seed gives the same points)")
    params: dict[str, Dimension] = Field(description="dotted path -> list of choices or {low, high, step?, log?}")


class ReportSpec(Schema):
    """``report:``: what the printed table and the plots show."""

    metrics: list[str] = Field(min_length=1, description="metric names, in the order shown (the objectives' "
                               "metrics come first); default: the stable metrics for the workload")


class SweepSpec(Schema):
    """The ``sweep:`` section: the cartesian product of its grid, zip groups and random draws."""

    grid: dict[str, Choices] | None = Field(None, description="dotted path -> values; every combination")
    zip: dict[str, Choices] | list[dict[str, Choices]] | None = Field(
        None, description="dotted path -> values, taken in lockstep (equal lengths); a list of such "
        "groups is crossed with each other")
    random: RandomSpec | None = Field(None, description="n points drawn from lists or ranges")
    objectives: list[str] | None = Field(None, description="optional: ['min latency_s', 'min area_mm2'] "
                                         "to write pareto.csv for the sweep")
    save_results: bool = Field(False, description="also write each point's results.json and layers.csv "
                               "into OUT/points/<point id>/")
    report: ReportSpec | None = Field(None, description="the metrics the table and plots show")


class SearchSpec(Schema):
    """The ``search:`` section: an optuna study over ``space``."""

    objectives: list[str] = Field(description="'min METRIC' or 'max METRIC', e.g. 'min latency_s'")
    constraints: list[str] = Field([], description="'METRIC <= VALUE' (or >=, <, >); VALUE may carry "
                                   "the metric's unit, e.g. 'sram_bytes <= 8 MiB'")
    space: dict[str, Dimension] = Field(description="dotted path -> list of choices or {low, high, step?, log?}")
    budget: int = Field(100, gt=0, description="number of trials")
    seed: int = Field(0, description="sampler seed")
    sampler: Literal["auto", "tpe", "nsga2", "random"] = Field(
        "auto", description="auto: tpe for one objective, nsga2 for several")
    batch: int = Field(8, gt=0, description="trials asked per round and run in parallel; results do "
                       "not depend on the number of workers, only on batch and seed")
    population: int | None = Field(None, gt=1, description="nsga2 population size (default: "
                                   "budget/4, between 4 and 50)")
    report: ReportSpec | None = Field(None, description="the metrics the table and plots show")


# ---- parameters: dotted paths ------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One swept or searched parameter: where it goes and what kind of value it takes."""

    path: str  # as written, e.g. "architecture.memory.ifmap_sram.size"
    section: str  # architecture | workload | mapper | engine
    canonical: tuple[str, ...]  # within the section, e.g. ("memory", "ifmap_sram", "size_bytes")
    kind: str | None = None  # unit kind of a quantity field ("size", "bandwidth", ...)
    integer: bool = False  # the field holds whole numbers
    limits: tuple[tuple[str, float], ...] = ()  # the field's own bounds, e.g. (("gt", 0.0),)
    choices: tuple | None = None  # the values of a Literal field, e.g. ("os", "ws", "is")

    @property
    def key(self) -> str:
        """The canonical dotted path (as in resolved_config.yaml)."""
        return ".".join((self.section, *self.canonical))


def _leaf_info(cls: Any, canon: tuple[str, ...]):
    """The pydantic FieldInfo at ``canon`` under model ``cls`` (or None)."""
    from workloads.schema import _unwrap  # the schema module's walker of model types

    info = None
    current: Any = cls
    for part in canon:
        target = current if isinstance(current, type) and hasattr(current, "model_fields") else _unwrap(current)
        if isinstance(target, tuple):
            current = target[1]
            info = None
            continue
        if target is None or not hasattr(target, "model_fields") or part not in target.model_fields:
            return None
        info = target.model_fields[part]
        current = info.annotation
    return info


def _field_traits(cls: Any, canon: tuple[str, ...]) -> tuple[str | None, bool, tuple, tuple | None]:
    from simulator.dse.limits import field_choices, field_limits

    info = _leaf_info(cls, canon)
    if info is None:
        return None, False, (), None
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    kind = extra.get("unit_kind")
    text = repr(info.annotation)
    integer = kind == "size" or (kind is None and "int" in text and "float" not in text)
    return kind, integer, field_limits(info), field_choices(info)


def resolve_param(path: Any, template_classes: list[type] | None) -> tuple[Param | None, str | None]:
    """Resolve a user's dotted path; returns (Param, None) or (None, problem message).

    ``template_classes``: the architecture template(s) the path applies to; None skips the
    architecture check (the template is not known yet).
    """
    from mappers.pipeline import MapperOptions
    from simulator.experiment import WorkloadSpec

    if not isinstance(path, str) or not path.strip():
        return None, f"expected a dotted path like 'architecture.rows', found {path!r}"
    section, _, rest = path.partition(".")
    if section not in SECTIONS:
        hint = did_you_mean(section, SECTIONS)
        return None, (f"'{path}' does not start with one of {', '.join(SECTIONS)}"
                      + (f" ({hint})" if hint else ""))
    if section == "engine":
        if rest:
            return None, "'engine' has no fields; write 'engine'"
        return Param(path, "engine", ()), None
    if not rest:
        return None, f"'{section}' alone cannot be set; give a field, e.g. '{section}.{_example(section)}'"
    if section == "architecture":
        if rest in ("preset", "template"):
            if rest == "template":
                return None, "the template cannot be swept; sweep 'architecture.preset' or the template's fields"
            return Param(path, section, ("preset",)), None
        if not template_classes:
            return Param(path, section, tuple(rest.split("."))), None
        canon, kind, integer, limits, choices = (), None, False, (), None
        for cls in template_classes:  # several when the preset is swept: a value must suit each
            c, err = resolve_path(cls, rest)
            if err:
                return None, err
            canon = c
            kind, integer, more, allowed = _field_traits(cls, c)
            limits = tuple(dict.fromkeys(limits + more))
            if allowed is not None:
                choices = allowed if choices is None else tuple(v for v in choices if v in allowed)
        return Param(path, section, tuple(canon), kind, integer, limits, choices), None
    cls = WorkloadSpec if section == "workload" else MapperOptions
    canon, err = resolve_path(cls, rest)
    if err:
        return None, err
    kind, integer, limits, choices = _field_traits(cls, canon)
    return Param(path, section, tuple(canon), kind, integer, limits, choices), None


def _example(section: str) -> str:
    return {"architecture": "rows", "workload": "batch", "mapper": "dataflow"}[section]


# ---- objectives and constraints ----------------------------------------------------------------

@dataclass(frozen=True)
class Objective:
    metric: str
    direction: str  # minimize | maximize

    def __str__(self) -> str:
        return f"{'min' if self.direction == 'minimize' else 'max'} {self.metric}"


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # <=, >=, <, >
    bound: float
    text: str

    def violation(self, value: float) -> float:
        """<= 0 when satisfied (optuna's convention), else by how much it is violated."""
        return value - self.bound if self.op in ("<=", "<") else self.bound - value


_DIRECTIONS = {"min": "minimize", "minimize": "minimize", "max": "maximize", "maximize": "maximize"}
_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|=<|=>|==|<|>|=)\s*(.+?)\s*$")


def parse_objective(text: Any) -> tuple[Objective | None, str | None]:
    parts = str(text).split() if isinstance(text, str) else []
    if len(parts) != 2 or parts[0].lower() not in _DIRECTIONS:
        return None, f"expected 'min METRIC' or 'max METRIC' (e.g. 'min latency_s'), found {text!r}"
    return Objective(parts[1], _DIRECTIONS[parts[0].lower()]), None


def metric_kind(metric: str) -> str | None:
    for suffix, kind in METRIC_UNIT_KINDS.items():
        if metric.endswith(suffix):
            return kind
    return None


def parse_constraint(text: Any) -> tuple[Constraint | None, str | None]:
    from architectures.units import UnitError, parse_quantity

    m = _CONSTRAINT.match(text) if isinstance(text, str) else None
    if not m:
        return None, (f"expected 'METRIC <= VALUE' (or >=, <, >), e.g. 'area_mm2 <= 50', found {text!r}")
    metric, op, value = m.groups()
    if op in ("=<", "=>"):
        return None, f"write '{op[::-1]}' instead of '{op}' ({text!r})"
    if op in ("==", "="):
        return None, f"'{op}' is not supported in constraints; use <= or >= ({text!r})"
    kind = metric_kind(metric)
    try:
        bound = float(value)
    except ValueError:
        if kind is None:
            return None, f"'{value}' is not a number (the metric '{metric}' has no unit to read it in)"
        try:
            bound = parse_quantity(value, kind)
        except UnitError as exc:
            return None, f"{metric}: {exc}"
    if math.isnan(bound):
        return None, f"bound {value!r} is not a number"
    return Constraint(metric, op, bound, text.strip()), None


# ---- checking a section --------------------------------------------------------------------------

def template_of(raw_architecture: Any) -> list[type] | None:
    """The template class an experiment's (unvalidated) ``architecture:`` names, or None if that
    cannot be told without the file's context (its own errors are reported elsewhere)."""
    from architectures.base import template_class
    from architectures.presets import load_preset_file

    try:
        if isinstance(raw_architecture, str):
            return [template_class(load_preset_file(raw_architecture).template)]
        if isinstance(raw_architecture, dict):
            if "preset" in raw_architecture:
                return [template_class(load_preset_file(str(raw_architecture["preset"])).template)]
            if "template" in raw_architecture:
                return [template_class(str(raw_architecture["template"]))]
    except Exception:  # noqa: BLE001 - reported by the architecture's own validation
        return None
    return None


def _check_values(param: Param, values: Any, key: tuple, problems: list) -> None:
    """Choices: a non-empty list; quantities parse in the field's unit; engines and presets exist."""
    from architectures.units import UnitError, parse_quantity

    if not isinstance(values, list):
        problems.append((key, f"expected a list of values, found {values!r}"))
        return
    if not values:
        problems.append((key, "empty list: give at least one value"))
        return
    for i, v in enumerate(values):
        if param.section == "engine":
            from simulator.experiment import ENGINE_NAMES

            if v not in ENGINE_NAMES:
                hint = did_you_mean(str(v), ENGINE_NAMES)
                problems.append((key + (i,), f"'{v}' is not an engine; available: {', '.join(ENGINE_NAMES)}"
                                 + (f" ({hint})" if hint else "")))
        elif param.canonical == ("preset",):
            from architectures.presets import preset_names

            names = preset_names()
            if not (isinstance(v, str) and (v in names or v.endswith((".yaml", ".yml")))):
                hint = did_you_mean(str(v), names)
                problems.append((key + (i,), f"'{v}' is not a preset; available: {', '.join(names)}"
                                 + (f" ({hint})" if hint else "")))
        elif param.kind is not None and v is not None:
            if isinstance(v, str) and v.strip().lower() in ("inf", "unlimited", "infinite"):
                continue
            try:
                parse_quantity(v, param.kind)
            except UnitError as exc:
                problems.append((key + (i,), str(exc)))


def range_bounds(param: Param, spec: RangeSpec) -> tuple[float, float, float | None]:
    """(low, high, step) as numbers in the field's base unit; raises ValueError with a message."""
    from architectures.units import UnitError, parse_quantity

    def num(v: Any, what: str) -> float:
        if isinstance(v, bool):
            raise ValueError(f"{what}: expected a number, found {v!r}")
        if isinstance(v, (int, float)):
            return float(v)
        if param.kind is None:
            try:
                return float(v)
            except ValueError:
                raise ValueError(f"{what}: '{v}' is not a number ('{param.path}' takes plain numbers)") from None
        try:
            return parse_quantity(v, param.kind)
        except UnitError as exc:
            raise ValueError(f"{what}: {exc}") from None

    low, high = num(spec.low, "low"), num(spec.high, "high")
    step = None if spec.step is None else num(spec.step, "step")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite")
    if low > high:
        raise ValueError(f"empty range: low {spec.low!r} is above high {spec.high!r}")
    if step is not None and step <= 0:
        raise ValueError(f"step must be > 0, found {spec.step!r}")
    if spec.log and step is not None:
        raise ValueError("give either step or log: true, not both")
    if spec.log and low <= 0:
        raise ValueError(f"log: true needs low > 0, found {spec.low!r}")
    return low, high, step


def _check_dimension(param: Param, dim: Any, key: tuple, problems: list) -> None:
    from simulator.dse.limits import check_limits

    if isinstance(dim, RangeSpec):
        if param.section == "engine" or param.canonical == ("preset",):
            problems.append((key, f"'{param.path}' takes names; give a list of choices, not a range"))
            return
        try:
            low, high, _ = range_bounds(param, dim)
        except ValueError as exc:
            problems.append((key, str(exc)))
            return
        check_limits(param, (low, high), key, problems)
    else:
        before = len(problems)
        _check_values(param, dim, key, problems)
        if len(problems) == before and isinstance(dim, list):
            check_limits(param, dim, key, problems)


def _preset_templates(values: Any) -> list[type]:
    from architectures.base import template_class
    from architectures.presets import load_preset_file

    out = []
    for v in values if isinstance(values, list) else []:
        try:
            cls = template_class(load_preset_file(str(v)).template)
        except Exception:  # noqa: BLE001 - reported by the value check
            continue
        if cls not in out:
            out.append(cls)
    return out


def check_section(name: str, spec: SweepSpec | SearchSpec, templates: list[type] | None,
                  raw_architecture: Any = None) -> tuple[list[tuple[tuple, str]], list[tuple[Param, Any, tuple]]]:
    """Every problem in a sweep/search section as (exact YAML key path, message), and the
    resolved parameters with their dimension (list or range) and key."""
    problems: list[tuple[tuple, str]] = []
    groups: list[tuple[dict, tuple]] = []
    if isinstance(spec, SweepSpec):
        if spec.grid is not None:
            groups.append((spec.grid, (name, "grid")))
        if isinstance(spec.zip, dict):
            groups.append((spec.zip, (name, "zip")))
        elif isinstance(spec.zip, list):
            groups += [(g, (name, "zip", i)) for i, g in enumerate(spec.zip)]
        if spec.random is not None:
            groups.append((spec.random.params, (name, "random", "params")))
        if not groups:
            problems.append(((name,), "give at least one of 'grid', 'zip', 'random'"))
        objectives = spec.objectives or []
    else:
        groups.append((spec.space, (name, "space")))
        objectives = spec.objectives
        if not objectives:
            problems.append(((name, "objectives"), "give at least one objective, e.g. 'min latency_s'"))
    entries = []
    for mapping, prefix in groups:
        if not mapping:
            problems.append((prefix, "no parameters: give at least one dotted path"))
        entries += [(path, dim, prefix + (path,)) for path, dim in mapping.items()]
    presets = [(dim, key) for path, dim, key in entries if path == "architecture.preset"]
    if presets:
        templates = _preset_templates(presets[0][0]) or templates
        if isinstance(raw_architecture, dict) and "preset" not in raw_architecture:
            problems.append((presets[0][1], "'architecture.preset' can be swept only when the "
                             "experiment's architecture names a preset"))
    seen: dict[str, tuple] = {}
    resolved: list[tuple[Param, Any, tuple]] = []
    for path, dim, key in entries:
        param, err = resolve_param(path, templates)
        if err:
            problems.append((key, err))
            continue
        if param.key in seen:
            problems.append((key, f"'{path}' is set twice (also at {'.'.join(map(str, seen[param.key]))})"))
            continue
        seen[param.key] = key
        resolved.append((param, dim, key))
        _check_dimension(param, dim, key, problems)
    for mapping, prefix in groups:
        if prefix[1] == "zip":
            lengths = {path: len(v) for path, v in mapping.items() if isinstance(v, list)}
            if len(set(lengths.values())) > 1:
                problems.append((prefix, "zip lists must have equal lengths; found "
                                 + ", ".join(f"{p}: {n}" for p, n in lengths.items())))
    for i, text in enumerate(objectives):
        _, err = parse_objective(text)
        if err:
            problems.append(((name, "objectives", i), err))
    if isinstance(spec, SearchSpec):
        for i, text in enumerate(spec.constraints):
            _, err = parse_constraint(text)
            if err:
                problems.append(((name, "constraints", i), err))
    return problems, resolved


def _validator(name: str):
    def check(value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if name == "search" and info.data.get("sweep") is not None:
            raise ValueError("give either 'sweep' or 'search', not both")
        raw = info.data.get("architecture")
        problems, _ = check_section(name, value, template_of(raw), raw)
        top = [msg for key, msg in problems if len(key) == 1]
        if top:
            raise ValueError("; ".join(top))
        if problems:
            raise FieldProblems([(".".join(map(str, key[1:])), msg) for key, msg in problems])
        return value

    return check


SweepField = Annotated[SweepSpec | None, AfterValidator(_validator("sweep"))]
SearchField = Annotated[SearchSpec | None, AfterValidator(_validator("search"))]
