"""The stepped paddy loop: its farmers reproduce the season balance, a canal
shares its flow among open gates, a closed gate lets the level fall, a drain
gate empties a field, and the one step function holds the old physics."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from agri.simulator import water
from agri.simulator.crop import daily_weather
from agri.simulator.paddy_loop import (
    CANAL_CAPACITY_SHARE,
    LoopError,
    PaddyLoop,
    canal_limited,
    canals_of,
)
from agri.simulator.season import season_fields
from agri.simulator.weather import simulate_weather

YEAR, SEED, FIELDS = 2025, 7, 12
HEADING = date(YEAR, 8, 5)


@pytest.fixture(scope="module")
def world():
    weather = simulate_weather(year=YEAR, seed=SEED)
    fields = season_fields(fields=FIELDS, seed=SEED, year=YEAR)
    daily = daily_weather(weather)
    plans = [water.plan_water(field=f, weather=weather, heading=HEADING,
                              rng=np.random.default_rng([SEED, i]), daily=daily)
             for i, f in enumerate(fields)]
    return weather, fields, plans


def _day(plans, day: date) -> int:
    return (day - plans[0].days[0].date()).days


def test_farmers_in_hour_steps_reproduce_the_season_balance(world) -> None:
    weather, _, plans = world
    season = water.simulate_water(plans, weather)
    loop = PaddyLoop(plans, weather, step_min=60, farmers=True, capacity_share=None)
    levels = np.array([loop.advance() for _ in range(len(season[0].times))]).T
    for i, paddy in enumerate(season):
        assert np.array_equal(levels[i], paddy.water_level_m)


def test_shorter_steps_stay_close_to_the_hourly_balance(world) -> None:
    weather, _, plans = world
    season = water.simulate_water(plans, weather)
    loop = PaddyLoop(plans, weather, step_min=15, farmers=True, capacity_share=None)
    hours = 24 * 60
    levels = np.empty((len(plans), hours))
    for k in range(hours):
        for _ in range(4):
            loop.advance()
        levels[:, k] = loop.level_m
    old = np.array([p.water_level_m[:hours] for p in season])
    assert np.median(np.abs(levels - old)) < 0.005


def test_step_function_matches_the_original_hourly_update() -> None:
    """The refactored step against the update as it was written inline before."""
    rng = np.random.default_rng(1)
    storage = rng.uniform(-0.03, 0.2, 50)
    temp = rng.uniform(10, 25, 50)
    perc = rng.uniform(10, 20, 50) / 24_000.0
    inflow = np.where(rng.random(50) < 0.5, water.INFLOW_MM_H / 1000.0, 0.0)
    crest = rng.choice([0.0, 0.07], 50)
    shade = rng.uniform(0, 1, 50)
    air, solar, rain, et, channel = 18.0, 600.0, 0.002, 0.0004, 16.0
    new = water.step(water.PaddyState(storage, temp), dt_h=1.0, air_c=air, solar_w_m2=solar,
                     rain_m_h=rain, et_m_h=et, channel_c=channel, shade=shade,
                     percolation_m_h=perc, inflow_m_h=inflow, crest_m=crest)
    # The update as simulate_water had it inline.
    loss = np.where(storage > 0, perc, perc * water.DRAINED_PERCOLATION_SHARE) + et
    ponded = np.maximum(storage, 0.0)
    s = storage + rain + inflow - loss
    s = np.clip(s - np.minimum(np.maximum(s - crest, 0.0), water.OUTLET_MM_H / 1000.0),
                water.MIN_LEVEL_M * water.SPECIFIC_YIELD, water.LEVEE_M)
    depth = np.maximum(np.where(s > 0, s, s / water.SPECIFIC_YIELD), 0.0)
    warming = water.SOLAR_WARMING_C_PER_W_M2 * solar * (1.0 - shade)
    target = air + np.where(depth > 0, warming, water.DRAINED_WARMING_SHARE * warming)
    t = temp + (target - temp) * (1.0 - np.exp(-1.0 / (water.TAU_BASE_H
                                                       + water.TAU_PER_M_H * depth)))
    t = np.where(inflow > 0, t + (channel - t) * inflow / np.maximum(ponded + inflow, 1e-3), t)
    assert np.allclose(new.storage, s, atol=1e-15, rtol=0)
    assert np.allclose(new.temp_c, t, atol=1e-12, rtol=0)


def test_a_canal_shares_its_flow_among_open_gates() -> None:
    canal = np.array([0, 0, 0, 0, 1])
    area = np.full(5, 3000.0)
    full = water.INFLOW_MM_H / 1000.0
    all_open = canal_limited(np.full(5, 100.0), canal, area, CANAL_CAPACITY_SHARE)
    assert np.allclose(all_open[:4], CANAL_CAPACITY_SHARE * full)  # 4 open: the canal limits
    assert all_open[4] == pytest.approx(CANAL_CAPACITY_SHARE * full)  # alone on its canal: too
    two_open = canal_limited(np.array([100.0, 100.0, 0, 0, 0]), canal, area,
                             CANAL_CAPACITY_SHARE)
    assert np.allclose(two_open, [full, full, 0, 0, 0])  # within the canal's capacity
    volume = (all_open * area)[:4].sum()
    assert volume == pytest.approx(CANAL_CAPACITY_SHARE * full * area[:4].sum())


def test_fields_are_grouped_on_canals_by_block(world) -> None:
    _, fields, _ = world
    canal = canals_of(fields, per_canal=3)
    for c in set(canal):
        members = [f for f, k in zip(fields, canal, strict=True) if k == c]
        assert 1 <= len(members) <= 3 and len({f.block.id for f in members}) == 1


def _flooded_loop(world, **kw) -> PaddyLoop:
    weather, _, plans = world
    loop = PaddyLoop(plans, weather, step_min=15, farmers=True, **kw)
    loop.run_until(_day(plans, date(YEAR, 6, 10)))  # tillering: every field flooded
    loop.farmers = False
    n, days = len(plans), len(plans[0].days)
    loop.crest_m = np.full((n, days), water.LEVEE_M)
    return loop


def test_a_closed_gate_lets_the_level_fall_and_an_open_one_raise_it(world) -> None:
    loop = _flooded_loop(world, capacity_share=None)
    start = loop.level_m.copy()
    assert (start > 0).all()
    loop.supply[:] = 0.0
    loop.supply[:3] = 100.0
    for _ in range(4 * 24):
        loop.advance()
    rain = loop.forcing.rain_m_h[loop.hour_index - 24:loop.hour_index].sum()
    if rain < 0.002:
        assert (loop.level_m[3:] < start[3:]).all()
    assert (loop.level_m[:3] > loop.level_m[3:].max()).all()


def test_a_drain_gate_empties_the_field(world) -> None:
    n = len(world[2])
    has_drain = np.arange(n) % 2 == 0
    loop = _flooded_loop(world, has_drain=has_drain)
    loop.drain[:] = 100.0
    for _ in range(4 * 12):
        loop.advance()
    assert (loop.level_m[has_drain] <= 0.0 + 1e-9).all()
    assert (loop.level_m[~has_drain] > 0.0).all()


def test_bad_steps_are_refused(world) -> None:
    weather, _, plans = world
    with pytest.raises(LoopError, match="divisor of 60"):
        PaddyLoop(plans, weather, step_min=7)
    with pytest.raises(LoopError, match="fields x days"):
        PaddyLoop(plans, weather, crest_m=np.zeros((1, 1)))
