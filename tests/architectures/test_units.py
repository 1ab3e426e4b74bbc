"""Quantities written as strings: what they parse to, and what the errors tell the user."""

from __future__ import annotations

import math

import pytest

from architectures.units import KINDS, UnitError, format_quantity, parse_quantity

KiB, MiB, GiB = 2**10, 2**20, 2**30


@pytest.mark.parametrize("text, expected", [
    ("64 KiB", 64 * KiB),
    ("64 kB", 64_000),          # SI kilo: 1000 bytes
    ("36 KiB", 36_864),
    ("24 MiB", 24 * MiB),
    ("1 MB", 1_000_000),
    ("8 GiB", 8 * GiB),
    ("1.5 KiB", 1536),
    ("512 bit", 64),
    ("1 byte", 1),
    ("24MiB", 24 * MiB),        # no space is fine
    (4096, 4096),               # plain numbers are bytes already
    ("4096", 4096),
])
def test_sizes(text, expected):
    assert parse_quantity(text, "size") == expected


@pytest.mark.parametrize("text, expected", [
    ("34 GB/s", 34e9),
    ("1.8 TB/s", 1.8e12),
    ("480 MB/s", 480e6),
    ("3.75 GB/s", 3.75e9),
    ("2 TiB/s", 2 * 2**40),
    ("64 Gbit/s", 8e9),         # bits are written 'bit'
    ("10 Mbit/s", 1.25e6),
    (1e9, 1e9),
])
def test_bandwidths(text, expected):
    assert parse_quantity(text, "bandwidth") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text, expected", [
    ("700 MHz", 700e6), ("1 GHz", 1e9), ("1.4 GHz", 1.4e9), ("200 MHz", 200e6), ("1e9", 1e9),
])
def test_frequencies(text, expected):
    assert parse_quantity(text, "frequency") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text, expected", [
    ("100 ns", 100e-9), ("1 us", 1e-6), ("2.5 ms", 2.5e-3), ("1 s", 1.0), ("500 ps", 500e-12),
])
def test_times(text, expected):
    assert parse_quantity(text, "time") == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text, kind, expected", [
    ("0.2 pJ", "energy", 0.2),
    ("1 nJ", "energy", 1000.0),
    ("3.1 pJ", "energy", 3.1),
    ("8 pJ/bit", "energy_per_byte", 64.0),   # per bit x 8 = per byte
    ("64 pJ/B", "energy_per_byte", 64.0),
    ("1 nJ/byte", "energy_per_byte", 1000.0),
])
def test_energies(text, kind, expected):
    assert parse_quantity(text, kind) == pytest.approx(expected, rel=1e-12)


def test_areas_and_powers():
    assert parse_quantity("0.5 mm^2", "area") == pytest.approx(0.5)
    assert parse_quantity("0.5 mm2", "area") == pytest.approx(0.5)
    assert parse_quantity("75 W", "power") == 75.0
    assert parse_quantity("278 mW", "power") == pytest.approx(0.278)


# --- errors that tell the user what to write ---------------------------------------------------

def _error(text, kind) -> str:
    with pytest.raises(UnitError) as info:
        parse_quantity(text, kind)
    return str(info.value)


def test_size_written_as_bandwidth_hints_per_second():
    msg = _error("2TB", "bandwidth")
    assert "'2TB' is a size, not a bandwidth" in msg
    assert "(write '2 TB/s')" in msg
    assert "write '34 GB/s'" not in msg and "'34 GB/s'" in msg  # the example, not the hint


def test_capital_kb_hints_kb_or_kib():
    for text in ("64 KB", "64KB"):
        msg = _error(text, "size")
        assert f"cannot read '{text}' as a size" in msg
        assert "write 'kB' for 1000 bytes or 'KiB' for 1024" in msg


def test_lowercase_b_is_not_taken_for_bits():
    msg = _error("10 Gb/s", "bandwidth")
    assert "not a bandwidth" in msg
    assert "'b' is not bit here: write 'bit', e.g. '64 Gbit/s', or 'B' for bytes" in msg


def test_frequency_written_as_bandwidth():
    msg = _error("700 MHz", "bandwidth")
    assert msg.startswith("'700 MHz' is a frequency, not a bandwidth")
    assert "expected something like '34 GB/s'" in msg


@pytest.mark.parametrize("text, kind, found", [
    ("1 GHz", "time", "a frequency"),
    ("3 W", "energy", "a power"),
    ("5 pJ", "energy_per_byte", "an energy"),
    ("64 KiB/s", "size", "a bandwidth"),
    ("100 ns", "frequency", "a time"),
])
def test_wrong_kind_names_what_was_found(text, kind, found):
    article = "an" if kind[0] in "aeiou" else "a"
    expected_kind = kind.replace("_", " ")
    assert f"'{text}' is {found}, not {article} {expected_kind}" in _error(text, kind)


@pytest.mark.parametrize("text", ["fast", "", "abc MHz", "nan", "12 furlongs per fortnight!", "GB/s"])
def test_garbage_strings(text):
    msg = _error(text, "bandwidth")
    assert f"'{text}'" in msg
    assert "expected something like '34 GB/s'" in msg or "not a bandwidth" in msg


@pytest.mark.parametrize("value", [True, None, float("nan")])
def test_non_strings_that_are_not_numbers(value):
    msg = _error(value, "size")
    assert "expected a size like '24 MiB'" in msg


def test_every_kind_has_an_example_that_parses():
    for name, kind in KINDS.items():
        example = kind.example.split(" or ")[0].strip("'")
        assert parse_quantity(example, name) > 0, name


# --- formatting, and the round trip ------------------------------------------------------------

@pytest.mark.parametrize("value, kind, text", [
    (64 * KiB, "size", "64 KiB"),
    (24 * MiB, "size", "24 MiB"),
    (8 * GiB, "size", "8 GiB"),
    (1536, "size", "1.5 KiB"),
    (100, "size", "100 B"),
    (34e9, "bandwidth", "34 GB/s"),
    (480e6, "bandwidth", "480 MB/s"),
    (700e6, "frequency", "700 MHz"),
    (1e-7, "time", "100 ns"),
    (1.5e-12, "time", "1.5 ps"),
    (0.2, "energy", "0.2 pJ"),
    (64.0, "energy_per_byte", "64 pJ/B"),
    (0.5, "area", "0.5 mm^2"),
    (75.0, "power", "75 W"),
])
def test_format_quantity(value, kind, text):
    assert format_quantity(value, kind) == text


# format_quantity shows 4 significant digits (sizes: whole binary units), so values written with
# at most that many come back exactly
@pytest.mark.parametrize("value, kind", [
    (64 * KiB, "size"), (64_000, "size"), (36 * KiB, "size"), (10 * MiB, "size"), (1536, "size"),
    (8 * GiB, "size"), (100, "size"),
    (34e9, "bandwidth"), (3.75e9, "bandwidth"), (480e6, "bandwidth"), (1.8e12, "bandwidth"),
    (700e6, "frequency"), (1e9, "frequency"),
    (1e-7, "time"), (2.5e-3, "time"), (1.0, "time"),
    (0.2, "energy"), (3.1, "energy"), (1000.0, "energy"),
    (64.0, "energy_per_byte"), (2.25, "energy_per_byte"),
    (0.5, "area"), (75.0, "power"),
])
def test_format_then_parse_round_trip(value, kind):
    assert parse_quantity(format_quantity(value, kind), kind) == pytest.approx(value, rel=1e-12)


def test_format_special_values():
    assert format_quantity(math.inf, "bandwidth") == "unlimited"
    assert format_quantity(None, "size") == "-"


def test_bit_rates_and_bad_types():
    from architectures.units import UnitError, format_quantity, parse_quantity

    assert parse_quantity("100 Mbps", "bandwidth") == pytest.approx(12.5e6)
    with pytest.raises(UnitError, match="found list"):
        parse_quantity([1], "size")
    # sizes that are not whole units print with enough digits to read back
    odd = 3 * 2**20 + 5
    assert round(parse_quantity(format_quantity(odd, "size"), "size")) == odd
