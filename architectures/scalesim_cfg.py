"""SCALE-Sim ``.cfg`` files -> a ``SystolicArray`` (and what else the file says).

Contract: ``load_scalesim_cfg(path, freq="1 GHz")`` reads a SCALE-Sim v3 configuration file and
returns a frozen ``ScaleSimConfig``: the run name, the ``systolic_array`` template built from the
file, the bandwidth mode, and notes about settings that Tessera reads but does not model. Every
bad value raises one ``ConfigError`` listing every problem as
``file:line: [section] Key: expected ..., found ...``. Keys are case-insensitive, as in
SCALE-Sim (its files spell ``IfmapSramSzkB`` and ``ifmapsramszkB`` both).

Mapping (SCALE-Sim's word is 1 byte: ``single_layer_sim.py``, ``word_size = 1``):

======================================  =================================================
SCALE-Sim                               Tessera
======================================  =================================================
[general] run_name                      ``run_name`` (names the output folder); the
                                        architecture is named ``scalesim_<R>x<C>_<df>``
ArrayHeight / ArrayWidth                ``rows`` / ``cols``
IfmapSramSzkB / FilterSramSzkB /        ``memory.{ifmap,filter,ofmap}_sram.size_bytes`` =
OfmapSramSzkB                           kB x 1024 (SCALE-Sim multiplies by 1024)
Dataflow                                ``dataflow`` (os | ws | is)
(none)                                  ``pe.precision: int8`` (1-byte words); ``freq_hz``:
                                        the ``freq`` argument (SCALE-Sim counts cycles only)
[run_presets] InterfaceBandwidth USER   ``memory.dram.bandwidth`` = first ``Bandwidth``
                                        value (words/cycle) x 1 B x freq
InterfaceBandwidth CALC                 unlimited DRAM bandwidth (SCALE-Sim estimates the
                                        bandwidth needed and never stalls)
======================================  =================================================

Unsupported features, decided per feature:

- ``[sparsity] SparsitySupport = true``: an error. Sparsity changes what the array computes
  (compressed filters, different mappings and read counts); ignoring it would report dense
  numbers for a sparse run without saying so.
- ``[layout] IfmapCustomLayout / FilterCustomLayout = true``: a note, ignored. Custom layouts
  only add SRAM bank-conflict stall cycles in SCALE-Sim's USER mode; Tessera models no banks.
- ``[run_presets] UseRamulatorTrace = True``: a note, ignored. It replays DRAM latencies from
  Ramulator ``.npy`` files; Tessera's DRAM is a bandwidth (and latency) model.
- Offsets, request-buffer sizes, MemoryBanks, bank bandwidths and ports: addresses and details
  of SCALE-Sim's trace replay that Tessera does not model; read by nothing, never an error.
- Keys SCALE-Sim does not know: a note (``ignored unknown key``), with a "did you mean".
"""

from __future__ import annotations

import configparser
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from architectures.systolic import DATAFLOWS, SystolicArray
from architectures.units import UnitError, format_quantity, parse_quantity
from workloads.errors import ConfigError, Problem, did_you_mean
from workloads.schema import validate

__all__ = ["ScaleSimConfig", "load_scalesim_cfg", "KNOWN_KEYS", "WORD_BYTES"]

WORD_BYTES = 1  # SCALE-Sim's word size (single_layer_sim.py: word_size = 1)

# Every key SCALE-Sim v3.0.0 reads (scale_config.read_conf_file), by section, as it spells them.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "general": ("run_name",),
    "architecture_presets": ("ArrayHeight", "ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB",
                             "OfmapSramSzkB", "IfmapOffset", "FilterOffset", "OfmapOffset",
                             "Bandwidth", "Dataflow", "MemoryBanks", "ReadRequestBuffer",
                             "WriteRequestBuffer"),
    "layout": ("IfmapCustomLayout", "IfmapSRAMBankBandwidth", "IfmapSRAMBankNum",
               "IfmapSRAMBankPort", "FilterCustomLayout", "FilterSRAMBankBandwidth",
               "FilterSRAMBankNum", "FilterSRAMBankPort"),
    "sparsity": ("SparsitySupport", "SparseRep", "OptimizedMapping", "BlockSize",
                 "RandomNumberGeneratorSeed", "NonZeroElems"),
    "run_presets": ("InterfaceBandwidth", "UseRamulatorTrace"),
    "network_presets": ("TopologyCsvLoc", "LayoutCsvLoc"),
}

_ARCH_KEYS = {  # SystolicArray field path -> the cfg key it comes from
    ("rows",): ("architecture_presets", "ArrayHeight"),
    ("cols",): ("architecture_presets", "ArrayWidth"),
    ("dataflow",): ("architecture_presets", "Dataflow"),
    ("memory", "ifmap_sram"): ("architecture_presets", "IfmapSramSzkB"),
    ("memory", "filter_sram"): ("architecture_presets", "FilterSramSzkB"),
    ("memory", "ofmap_sram"): ("architecture_presets", "OfmapSramSzkB"),
    ("memory", "dram"): ("architecture_presets", "Bandwidth"),
}


@dataclass(frozen=True)
class ScaleSimConfig:
    """A SCALE-Sim configuration read into Tessera's terms (see the module docstring)."""

    path: str
    run_name: str
    architecture: SystolicArray
    bandwidth_mode: Literal["USER", "CALC"]
    bandwidth_words_per_cycle: tuple[int, ...] = ()  # as written (USER mode); Tessera uses [0]
    notes: tuple[str, ...] = field(default_factory=tuple)


class _Lines:
    """Line numbers of sections and keys as written (configparser does not keep them)."""

    _SECTION = re.compile(r"^\s*\[([^\]]+)\]")
    _KEY = re.compile(r"^([^\s:=#;\[][^:=]*?)\s*[:=]")

    def __init__(self, text: str):
        self.sections: dict[str, int] = {}
        self.keys: dict[tuple[str, str], tuple[int, str]] = {}
        section = None
        for n, line in enumerate(text.splitlines(), start=1):
            m = self._SECTION.match(line)
            if m:
                section = m.group(1).strip()
                self.sections.setdefault(section, n)
                continue
            m = self._KEY.match(line)
            if m and section is not None:
                self.keys.setdefault((section, m.group(1).strip().lower()), (n, m.group(1).strip()))

    def key(self, section: str, key: str) -> int | None:
        hit = self.keys.get((section, key.lower()))
        return hit[0] if hit else self.sections.get(section)

    def spelled(self, section: str, key: str) -> str:
        hit = self.keys.get((section, key.lower()))
        return hit[1] if hit else key


class _Reader:
    """Typed access to the parsed file that records problems instead of raising."""

    def __init__(self, file: str, parser: configparser.ConfigParser, lines: _Lines):
        self.file = file
        self.parser = parser
        self.lines = lines
        self.problems: list[Problem] = []
        # section names are case-sensitive in configparser; accept any case, as written
        self.sections = {s.lower(): s for s in parser.sections()}
        self.missing_sections: set[str] = set()

    def where(self, section: str, key: str) -> tuple[str, int | None]:
        real = self.sections.get(section.lower(), section)
        return f"[{real}] {self.lines.spelled(real, key)}", self.lines.key(real, key)

    def problem(self, section: str, key: str | None, message: str, hint: str | None = None) -> None:
        if key is None:
            real = self.sections.get(section.lower(), section)
            self.problems.append(Problem(self.file, f"[{real}]", message,
                                         self.lines.sections.get(real), hint))
            return
        path, line = self.where(section, key)
        self.problems.append(Problem(self.file, path, message, line, hint))

    def raw(self, section: str, key: str, required: bool) -> str | None:
        real = self.sections.get(section.lower())
        if real is None:
            if required and section not in self.missing_sections:
                self.missing_sections.add(section)
                unknown = [s for s in self.parser.sections() if s.lower() not in KNOWN_KEYS]
                close = difflib.get_close_matches(section, unknown, n=1, cutoff=0.8)
                self.problems.append(Problem(self.file, f"[{section}]", "required section is missing",
                                             hint=f"did you mean '{close[0]}'?" if close else None))
            return None
        if not self.parser.has_option(real, key):
            if required:
                self.problems.append(Problem(self.file, f"[{real}] {key}", "required key is missing",
                                             self.lines.sections.get(real), self._typo(real, key)))
            return None
        return self.parser.get(real, key).strip()

    def _typo(self, real: str, key: str) -> str | None:
        """A hint naming a key of the section, unknown to SCALE-Sim, that looks like ``key``."""
        known = {k.lower() for keys in KNOWN_KEYS.values() for k in keys}
        unknown = [k for k in self.parser.options(real) if k not in known]
        close = difflib.get_close_matches(key.lower(), unknown, n=1, cutoff=0.6)
        if not close:
            return None
        return (f"'{self.lines.spelled(real, close[0])}' on line {self.lines.key(real, close[0])} "
                f"looks like a misspelling of it")

    def positive_int(self, section: str, key: str, required: bool = True) -> int | None:
        text = self.raw(section, key, required)
        if text is None:
            return None
        try:
            value = int(text)
        except ValueError:
            self.problem(section, key, f"expected a positive integer, found {text!r}")
            return None
        if value <= 0:
            self.problem(section, key, f"expected a positive integer, found {value}")
            return None
        return value

    def choice(self, section: str, key: str, choices: tuple[str, ...], required: bool = True) -> str | None:
        text = self.raw(section, key, required)
        if text is None:
            return None
        for c in choices:
            if text.lower() == c.lower():
                return c
        self.problem(section, key, f"expected one of {', '.join(choices)}, found {text!r}",
                     did_you_mean(text, choices))
        return None

    def boolean(self, section: str, key: str) -> bool:
        text = self.raw(section, key, False)
        if text is None:
            return False
        low = text.lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        self.problem(section, key, f"expected True or False, found {text!r}")
        return False


def _read_file(path: Path) -> str:
    file = str(path)
    if not path.exists():
        raise ConfigError(Problem(file, "", "config file not found"))
    if path.is_dir():
        raise ConfigError(Problem(file, "", "is a folder, expected a SCALE-Sim .cfg file"))
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(Problem(file, "", f"not a text file (byte {exc.start} is not UTF-8); "
                                  "expected a SCALE-Sim .cfg file")) from None
    except OSError as exc:
        raise ConfigError(Problem(file, "", f"cannot read the file: {exc.strerror}")) from None


def _parse(file: str, text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=file)
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(Problem(file, "", f"expected a section header like [general] before "
                                  f"the first key, found {exc.line.strip()!r}", exc.lineno)) from None
    except configparser.ParsingError as exc:
        raw = text.splitlines()
        raise ConfigError([Problem(file, "", f"cannot read {raw[lineno - 1].strip()!r} (expected "
                                   f"'Key: value' or '[section]')", lineno)
                           for lineno, _ in exc.errors]) from None
    except (configparser.DuplicateSectionError, configparser.DuplicateOptionError) as exc:
        dup = isinstance(exc, configparser.DuplicateOptionError)
        first = _Lines(text).key(exc.section, exc.option) if dup else None
        m = _Lines._KEY.match(text.splitlines()[exc.lineno - 1]) if dup and exc.lineno else None
        spelled = m.group(1).strip() if m else getattr(exc, "option", "")
        what = (f"[{exc.section}] {spelled}: key written twice (first on line {first})"
                if dup else f"[{exc.section}]: section written twice")
        raise ConfigError(Problem(file, "", what, exc.lineno)) from None
    except configparser.Error as exc:
        raise ConfigError(Problem(file, "", f"not a valid .cfg file: {exc.message}")) from None
    return parser


def load_scalesim_cfg(path: str | Path, freq: str | float = "1 GHz") -> ScaleSimConfig:
    """Read a SCALE-Sim configuration file (see the module docstring)."""
    p = Path(path)
    file = str(path)
    text = _read_file(p)
    lines = _Lines(text)
    r = _Reader(file, _parse(file, text), lines)
    notes: list[str] = []

    freq_hz = None
    try:
        freq_hz = parse_quantity(freq, "frequency")
        if not freq_hz > 0:
            raise UnitError(f"expected a positive frequency, found {freq!r}")
    except UnitError as exc:
        r.problems.append(Problem("command line", "--freq", str(exc)))
        freq_hz = None

    run_name = r.raw("general", "run_name", True)
    if run_name is not None and not run_name:
        r.problem("general", "run_name", "expected a name (it names the output folder), found ''")
    elif run_name is not None and ("/" in run_name or "\\" in run_name or run_name in (".", "..")):
        r.problem("general", "run_name", f"expected a folder name without path separators, "
                  f"found {run_name!r}")
    rows = r.positive_int("architecture_presets", "ArrayHeight")
    cols = r.positive_int("architecture_presets", "ArrayWidth")
    sizes = {b: r.positive_int("architecture_presets", k) for b, k in
             (("ifmap_sram", "IfmapSramSzkB"), ("filter_sram", "FilterSramSzkB"),
              ("ofmap_sram", "OfmapSramSzkB"))}
    dataflow = r.choice("architecture_presets", "Dataflow", DATAFLOWS)
    mode = r.choice("run_presets", "InterfaceBandwidth", ("USER", "CALC"))

    bandwidths: tuple[int, ...] = ()
    dram_bw: float | str = "inf"
    if mode == "USER":
        text_bw = r.raw("architecture_presets", "Bandwidth", True)
        if text_bw is not None:
            try:
                bandwidths = tuple(int(x.strip()) for x in text_bw.split(","))
                if any(b <= 0 for b in bandwidths):
                    raise ValueError
            except ValueError:
                r.problem("architecture_presets", "Bandwidth", "expected positive integers (words "
                          f"per cycle, comma-separated), found {text_bw!r}")
                bandwidths = ()
        if bandwidths and freq_hz:
            dram_bw = bandwidths[0] * WORD_BYTES * freq_hz
            if len(bandwidths) > 1:
                notes.append(f"[architecture_presets] Bandwidth lists {len(bandwidths)} values; the "
                             f"first ({bandwidths[0]} words/cycle) is the DRAM bandwidth, as in SCALE-Sim")
    elif mode == "CALC":
        notes.append("InterfaceBandwidth CALC: DRAM bandwidth is unlimited (SCALE-Sim estimates the "
                     "bandwidth needed and never stalls); the DRAM BW columns report what each "
                     "layer's traffic needs")

    if r.boolean("sparsity", "SparsitySupport"):
        r.problem("sparsity", "SparsitySupport", "sparse systolic arrays are not supported by "
                  "Tessera; set it to false for the dense results (SCALE-Sim then ignores the "
                  "topology's N:M column too)")
    for key in ("IfmapCustomLayout", "FilterCustomLayout"):
        if r.boolean("layout", key):
            notes.append(f"[layout] {key} is ignored: custom SRAM layouts only add bank-conflict "
                         f"stalls in SCALE-Sim, and Tessera models no SRAM banks")
    if r.boolean("run_presets", "UseRamulatorTrace"):
        notes.append("[run_presets] UseRamulatorTrace is ignored: Tessera's DRAM is a bandwidth "
                     "model, it does not replay Ramulator latency traces")
    notes.extend(_unknown_keys(r, lines))

    arch = None
    if not r.problems:
        data: dict[str, Any] = {
            "name": f"scalesim_{rows}x{cols}_{dataflow}",
            "description": f"SCALE-Sim config {p.name} (run {run_name})",
            "rows": rows, "cols": cols, "dataflow": dataflow, "freq": freq_hz,
            "pe": {"precision": "int8"},
            "memory": {b: {"size": kb * 1024} for b, kb in sizes.items()}
            | {"dram": {"bandwidth": dram_bw}},
        }

        def origin(loc: tuple):
            for n in range(len(loc), 0, -1):
                hit = _ARCH_KEYS.get(tuple(loc[:n]))
                if hit:
                    path_, line = r.where(*hit)
                    return file, (path_,), line
            if tuple(loc[:1]) == ("freq_hz",):
                return "command line", ("--freq",), None
            return file, loc, None

        try:
            arch = validate(SystolicArray, data, file=file, origin=origin)
        except ConfigError as exc:
            r.problems.extend(exc.problems)
    if r.problems:
        raise ConfigError(r.problems)
    assert arch is not None and run_name is not None and mode is not None
    if mode == "USER":
        notes.insert(0, f"InterfaceBandwidth USER: DRAM bandwidth {bandwidths[0]} words/cycle x "
                     f"{WORD_BYTES} B x {format_quantity(freq_hz, 'frequency')} = "
                     f"{format_quantity(arch.memory.dram.bandwidth_bytes_per_s, 'bandwidth')}, "
                     f"shared by all operands")
    return ScaleSimConfig(path=file, run_name=run_name, architecture=arch, bandwidth_mode=mode,
                          bandwidth_words_per_cycle=bandwidths, notes=tuple(notes))


def _unknown_keys(r: _Reader, lines: _Lines) -> list[str]:
    out = []
    known_sections = {s.lower(): s for s in KNOWN_KEYS}
    for real in r.parser.sections():
        sec = known_sections.get(real.lower())
        if sec is None:
            hint = did_you_mean(real, KNOWN_KEYS)
            out.append(f"{r.file}: [{real}]: ignored unknown section" + (f" ({hint})" if hint else ""))
            continue
        known = {k.lower() for k in KNOWN_KEYS[sec]}
        for key in r.parser.options(real):
            if key not in known:
                spelled = lines.spelled(real, key)
                hint = did_you_mean(spelled, KNOWN_KEYS[sec])
                line = lines.key(real, key)
                out.append(f"{r.file}:{line}: [{real}] {spelled}: ignored unknown key"
                           + (f" ({hint})" if hint else ""))
    return out
