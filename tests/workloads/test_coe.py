"""The CoE request stream: routing, the LRU cache of experts in HBM, spec validation."""

from __future__ import annotations

from collections import Counter

import pytest

from workloads.coe import CoESpec, lru_schedule, route
from workloads.errors import ConfigError
from workloads.schema import validate


def spec(**kw) -> CoESpec:
    return validate(CoESpec, {"experts": 10, **kw})


def test_routing_is_deterministic_for_a_seed_and_in_range():
    a = route(spec(requests=200, seed=3))
    assert a == route(spec(requests=200, seed=3))
    assert a != route(spec(requests=200, seed=4))
    assert len(a) == 200 and set(a) <= set(range(10))


def test_zipf_favours_the_first_experts():
    counts = Counter(route(spec(requests=2000, routing={"distribution": "zipf", "alpha": 1.5})))
    assert counts[0] > counts[1] > counts[4] > counts[9]


def test_explicit_routing_is_the_list():
    s = spec(routing={"distribution": "explicit", "experts": [3, 3, 1]})
    assert route(s) == [3, 3, 1] and s.n_requests == 3


@pytest.mark.parametrize("kw, message", [
    ({"routing": {"distribution": "explicit"}}, "explicit routing needs the list"),
    ({"routing": {"distribution": "explicit", "experts": [0, 10]}}, "expert ids must be in 0..9"),
    ({"requests": 5, "routing": {"distribution": "explicit", "experts": [0]}}, "5 requests but routing.experts lists 1"),
    ({"routing": {"distribution": "uniform", "experts": [0]}}, "applies to distribution 'explicit' only"),
    ({"routing": {"distribution": "zipff"}}, "did you mean 'zipf'"),
])
def test_bad_specs_are_reported_with_the_numbers(kw, message):
    with pytest.raises(ConfigError) as info:
        spec(**kw)
    assert message in str(info.value)


def test_lru_schedule_by_hand():
    # two slots: 0 miss, 1 miss, 0 hit, 2 miss (evicts 1, the least recently used), 1 miss (evicts 0)
    s = lru_schedule([0, 1, 0, 2, 1], slots=2)
    assert s.hits == (False, False, True, False, False)
    assert s.evicted == ((), (), (), (1,), (0,))
    assert s.switches == 4


def test_lru_needs_a_slot():
    with pytest.raises(ValueError, match="at least one expert"):
        lru_schedule([0], slots=0)
