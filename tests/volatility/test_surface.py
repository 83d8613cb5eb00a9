"""fit_surface: from a simulated chain to the published surface Dataset, its layout and statuses."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from periscope import schema
from periscope.errors import InvalidInputError
from periscope.simulator.market import Market, SimulationConfig
from periscope.volatility.arbitrage import check_butterfly, check_calendar, dense_k_grid
from periscope.volatility.deamericanize import CashDividends
from periscope.volatility.essvi import EssviSurface
from periscope.volatility.surface import (
    CLEANING_REASONS,
    _arbitrage_checks,
    _arbitrage_checks_by_slice,
    fit_surface,
)
from periscope.volatility.svi import SviParams

TRUTH = ("true_price", "true_volatility", "forward", "rate", "dividend_yield", "dividend_pv")


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(SimulationConfig(seed=11, n_underlyings=20, n_days=40))


@pytest.fixture(scope="module")
def spx_chain(market: Market) -> xr.Dataset:
    return market.chain("I:SPX", market.days[12]).dataset()


@pytest.fixture(scope="module")
def jpm_chain(market: Market) -> xr.Dataset:
    return market.chain("JPM", market.days[12]).dataset()


@pytest.fixture(scope="module")
def spx(spx_chain: xr.Dataset) -> xr.Dataset:
    return fit_surface(spx_chain)


def test_fit_surface__external_names_and_layout(spx: xr.Dataset, spx_chain: xr.Dataset) -> None:
    schema.validate_surface(spx)
    assert spx[schema.UNDERLYING].item() == "I:SPX"
    assert spx["forward"].dims == ("expiry",)
    assert spx["time_to_expiry"].dims == ("expiry",)
    assert spx["implied_volatility"].dims == ("expiry", "log_moneyness")
    listed = np.unique(spx_chain.expiry.values)
    np.testing.assert_array_equal(spx.expiry.values, listed)
    expiry = spx.expiry.values[5]
    row = spx["implied_volatility"].sel(expiry=expiry)
    assert row.dims == ("log_moneyness",)
    assert np.isfinite(row.values).all()
    np.testing.assert_array_equal(spx.log_moneyness.values, schema.LOG_MONEYNESS_GRID)
    assert spx.sizes["tenor"] == 6
    assert spx.sizes["delta"] == 5
    assert spx.tenor.values.tolist() == [7, 30, 60, 90, 180, 365]
    assert spx.cleaning_reason.values.tolist() == list(CLEANING_REASONS)


def test_fit_surface__statuses_metrics_and_diagnostics(spx: xr.Dataset) -> None:
    assert schema.SurfaceStatus(int(spx.surface_status)) in {
        schema.SurfaceStatus.OK,
        schema.SurfaceStatus.PARTIAL,
    }
    status = spx.expiry_status.values
    ok = status == schema.ExpiryStatus.OK
    assert ok.sum() >= 25  # SPX lists ~29 dates; only the last-hour 0DTE may lack quotes
    assert 0.5 < float(spx.confidence) <= 1.0
    # Published rows are complete; the others are NaN.
    assert np.isfinite(spx.implied_volatility.values[ok]).all()
    assert np.isnan(spx.implied_volatility.values[~ok]).all()
    assert np.isfinite(spx.essvi_parameters.values[ok]).all()
    for name in ("rmse_bp", "max_abs_error_bp", "inside_band_share", "atm_implied_volatility"):
        assert np.isfinite(spx[name].values[ok]).all(), name
    assert (spx.quotes_used.values[ok] >= 5).all()
    assert (spx.inside_band_share.values[ok] > 0.6).all()
    # The arbitrage checks ran on the published surface and found nothing.
    assert int(spx.butterfly_violations.sum()) == 0
    assert int(spx.calendar_violations.sum()) == 0
    assert (spx.min_durrleman_g.values[ok] >= -1e-10).all()
    # Metrics: an index has a put skew and a convex smile at every tenor.
    assert np.isfinite(spx.constant_maturity_iv.values).all()
    assert (spx.risk_reversal_25.values < 0).all()
    assert (spx.risk_reversal_10.values < spx.risk_reversal_25.values).all()
    assert (spx.butterfly_25.values > 0).all()
    assert (spx.atm_skew.values < 0).all()
    cm = spx.constant_maturity_iv
    assert float(spx.term_structure_slope) == pytest.approx(
        float(cm.sel(tenor=90) - cm.sel(tenor=30))
    )
    # Counts: every contract of a date lands in used, dropped or the in-the-money side.
    assert int(spx.cleaning_counts.sel(cleaning_reason="not_otm").sum()) > 0


def test_fit_surface__published_surface_rebuilds_from_stored_parameters(spx: xr.Dataset) -> None:
    ok = spx.expiry_status.values == schema.ExpiryStatus.OK
    params = spx.essvi_parameters.values[ok]
    t = spx.time_to_expiry.values[ok]
    rebuilt = EssviSurface.from_arrays(t, params[:, 0], params[:, 1], params[:, 2])
    k = schema.LOG_MONEYNESS_GRID
    np.testing.assert_allclose(
        rebuilt.implied_volatility(k[None, :], t[:, None]),
        spx.implied_volatility.values[ok],
        rtol=1e-14,
    )
    # Independent arbitrage checks of the stored surface, on a dense grid and between the
    # slices and at interpolated times.
    for i in range(t.size):
        assert check_butterfly(rebuilt.raw_svi(i)).violations == 0
    times = np.sort(np.concatenate([t, 0.5 * (t[1:] + t[:-1]), [t[-1] * 1.5]]))
    smiles = [lambda x, tt=tt: rebuilt.total_variance(x, tt) for tt in times]
    assert check_calendar(smiles, dense_k_grid(-2.0, 2.0, 0.001)).crossings == 0


def test_fit_surface__close_to_the_simulator_truth(spx: xr.Dataset, spx_chain: xr.Dataset) -> None:
    ok = spx.expiry_status.values == schema.ExpiryStatus.OK
    chain_expiry = spx_chain.expiry.values
    for expiry, forward in zip(spx.expiry.values[ok], spx.forward.values[ok], strict=True):
        true_forward = spx_chain.forward.values[chain_expiry == expiry]
        # Two settlements on one date have (slightly) different forwards: the closest one.
        assert np.min(np.abs(forward / true_forward - 1)) < 2e-4
    truth_atm = []
    for expiry, t in zip(spx.expiry.values[ok], spx.time_to_expiry.values[ok], strict=True):
        sel = chain_expiry == expiry
        k = np.log(spx_chain.strike.values[sel] / spx_chain.forward.values[sel])
        order = np.argsort(k)
        truth_atm.append(np.interp(0.0, k[order], spx_chain.true_volatility.values[sel][order]))
        assert t > 0
    error = spx.atm_implied_volatility.values[ok] - np.array(truth_atm)
    assert np.sqrt(np.mean(error**2)) < 0.004


def test_fit_surface__american_chain(jpm_chain: xr.Dataset) -> None:
    surface = fit_surface(jpm_chain)
    schema.validate_surface(surface)
    assert int(surface.surface_status) == schema.SurfaceStatus.OK
    assert (surface.expiry_status.values == schema.ExpiryStatus.OK).all()
    assert int(surface.butterfly_violations.sum()) == int(surface.calendar_violations.sum()) == 0
    # Constant-maturity points between listed expiries are not extrapolated; 7 days may be.
    t = surface.time_to_expiry.values
    tenor_t = surface.tenor_years.values
    inside = (tenor_t >= t.min()) & (tenor_t <= t.max())
    np.testing.assert_array_equal(surface.tenor_extrapolated.values, ~inside)


def test_fit_surface__dividend_schedule_and_model(market: Market, jpm_chain: xr.Dataset) -> None:
    # The dividends Dataset of the market-data client: JPM's rows among another ticker's.
    rows = [(d.ex_date, d.cash_amount, "JPM") for d in market.dividends("JPM")]
    rows += [(d.ex_date, 9.0, "XOM") for d in market.dividends("XOM")]
    table = xr.Dataset(
        {schema.CASH_AMOUNT: (schema.DIVIDEND, np.array([r[1] for r in rows]))},
        coords={
            schema.TICKER: (schema.DIVIDEND, np.array([r[2] for r in rows], dtype=object)),
            schema.EX_DIVIDEND_DATE: (
                schema.DIVIDEND,
                np.array([r[0] for r in rows], dtype="datetime64[D]").astype("datetime64[ns]"),
            ),
        },
    )
    from_table = fit_surface(jpm_chain, dividends=table)
    own = CashDividends.from_rows((d.ex_date, d.cash_amount) for d in market.dividends("JPM"))
    from_schedule = fit_surface(jpm_chain, dividends=own)
    np.testing.assert_array_equal(from_table.forward.values, from_schedule.forward.values)
    assert (from_table.expiry_status.values == schema.ExpiryStatus.OK).all()
    spread = fit_surface(jpm_chain)
    as_yield = fit_surface(jpm_chain, dividend_model="yield")
    truth = np.array(
        [
            np.median(jpm_chain.forward.values[jpm_chain.expiry.values == day])
            for day in spread.expiry.values
        ]
    )
    for surface in (from_table, spread, as_yield):
        ok = surface.forward_status.values == 0
        assert np.abs(surface.forward.values[ok] / truth[ok] - 1).max() < 5e-3
    # The treatments differ only in the premiums, so in the forwards by well under a percent.
    assert not np.array_equal(spread.forward.values, as_yield.forward.values)
    with pytest.raises(InvalidInputError):
        fit_surface(jpm_chain, dividend_model="discrete")  # type: ignore[call-overload]


def test_fit_surface__return_quotes_aligns_with_the_chain(jpm_chain: xr.Dataset) -> None:
    surface, quotes = fit_surface(jpm_chain, return_quotes=True)
    assert quotes.sizes["contract"] == jpm_chain.sizes["contract"]
    np.testing.assert_array_equal(quotes.ticker.values, jpm_chain.ticker.values)
    used = quotes.used.values
    assert used.sum() == int(surface.quotes_used.sum())
    assert (quotes.quote_flags.values[used] == 0).all()
    # The published surface at the used quotes reproduces the stored fit errors.
    error = quotes.fitted_iv.values[used] - quotes.iv_mid.values[used]
    assert np.isfinite(error).all()
    assert np.sqrt(np.mean(error**2)) * 1e4 < 2 * float(surface.rmse_bp.max())
    merged = jpm_chain.drop_vars([*TRUTH, "time_to_expiry"]).merge(quotes, compat="no_conflicts")
    assert "fitted_iv" in merged
    assert "bid" in merged


def test_fit_surface__empty_chain_has_no_usable_expiry() -> None:
    surface = fit_surface(schema.empty_chain(attrs={"underlying": "XYZ"}))
    schema.validate_surface(surface)
    assert surface[schema.UNDERLYING].item() == "XYZ"
    assert int(surface.surface_status) == schema.SurfaceStatus.NO_USABLE_EXPIRY
    assert surface.sizes["expiry"] == 0
    assert np.isnan(surface.constant_maturity_iv.values).all()
    assert float(surface.confidence) == 0.0
    assert surface.status_message.item()


def test_fit_surface__no_bids_anywhere_is_a_status_not_an_error(jpm_chain: xr.Dataset) -> None:
    broken = jpm_chain.copy()
    broken["bid"] = xr.zeros_like(broken["bid"])
    surface = fit_surface(broken)
    assert int(surface.surface_status) == schema.SurfaceStatus.NO_USABLE_EXPIRY
    assert (surface.expiry_status.values != schema.ExpiryStatus.OK).all()
    assert np.isnan(surface.implied_volatility.values).all()
    zero_bids = int(surface.cleaning_counts.sel(cleaning_reason="zero_bid").sum())
    assert zero_bids > 0.9 * jpm_chain.sizes["contract"]


def test_fit_surface__an_expiry_without_quotes_is_skipped(jpm_chain: xr.Dataset) -> None:
    broken = jpm_chain.copy()
    second = np.unique(broken.expiry.values)[1]
    sel = (broken.expiry == second).values
    broken["ask"] = broken["ask"].where(~sel)
    surface = fit_surface(broken)
    row = surface.sel(expiry=second)
    assert int(row.expiry_status) == schema.ExpiryStatus.TOO_FEW_QUOTES
    assert np.isnan(row.implied_volatility.values).all()
    assert int(surface.surface_status) == schema.SurfaceStatus.OK
    others = surface.expiry_status.values[surface.expiry.values != second]
    assert (others == schema.ExpiryStatus.OK).all()


def test_fit_surface__rejects_what_is_not_one_chain(
    spx_chain: xr.Dataset, jpm_chain: xr.Dataset
) -> None:
    with pytest.raises(InvalidInputError, match="chain Dataset"):
        fit_surface({"bid": [1.0]})  # type: ignore[arg-type]
    both = xr.concat(
        [spx_chain.isel(contract=slice(0, 5)), jpm_chain.isel(contract=slice(0, 5))], dim="contract"
    )
    with pytest.raises(InvalidInputError, match="one underlying"):
        fit_surface(both)
    with pytest.raises(InvalidInputError, match="lacks variable 'bid'"):
        fit_surface(jpm_chain.drop_vars("bid"))


def test_stack_surfaces__outer_join_on_expiry_keeps_dtypes(
    spx: xr.Dataset, jpm_chain: xr.Dataset
) -> None:
    jpm = fit_surface(jpm_chain)
    empty = fit_surface(schema.empty_chain(attrs={"underlying": "XYZ"}))
    stacked = schema.stack_surfaces([spx, jpm, empty])
    schema.validate_surface(stacked)
    assert stacked.underlying.values.tolist() == ["I:SPX", "JPM", "XYZ"]
    union = np.union1d(spx.expiry.values, jpm.expiry.values)
    np.testing.assert_array_equal(stacked.expiry.values, union)
    assert stacked.expiry_status.dtype == np.int8
    assert stacked.quotes_used.dtype == np.int32
    padded = ~np.isin(union, jpm.expiry.values)
    assert (stacked.expiry_status.sel(underlying="JPM").values[padded] == 6).all()
    assert (stacked.quotes_used.sel(underlying="JPM").values[padded] == 0).all()
    # One underlying of the stack is that underlying's surface on the union of expiries.
    back = stacked.sel(underlying="JPM").sel(expiry=jpm.expiry.values)
    np.testing.assert_array_equal(back.implied_volatility.values, jpm.implied_volatility.values)
    with pytest.raises(InvalidInputError, match="twice"):
        schema.stack_surfaces([jpm, jpm])


def _stack_through_xarray(surfaces: list[xr.Dataset]) -> xr.Dataset:
    """The obvious reference: reindex every surface to the union, then concatenate."""
    expiries = np.unique(np.concatenate([s.expiry.values for s in surfaces]))
    reasons = list(dict.fromkeys(r for s in surfaces for r in s.cleaning_reason.values.tolist()))
    fills = {name: fill for name, (_, _, fill) in schema.SURFACE_LAYOUT.items()}
    padded = [
        s.reindex(
            {"expiry": expiries, "cleaning_reason": np.array(reasons, dtype=object)},
            fill_value=fills,
        )
        for s in surfaces
    ]
    stacked = xr.concat(
        padded, dim="underlying", data_vars="all", coords="minimal", compat="override",
        join="exact", combine_attrs="drop_conflicts",
    )  # fmt: skip
    for name, (_, dtype, _) in schema.SURFACE_LAYOUT.items():
        if dtype != "object":
            stacked[name] = stacked[name].astype(dtype)
    return stacked


def test_stack_surfaces__same_as_reindex_and_concat(spx: xr.Dataset, jpm_chain: xr.Dataset) -> None:
    jpm = fit_surface(jpm_chain)
    jpm.attrs["day"] = "another day"  # a conflicting attribute is dropped
    empty = fit_surface(schema.empty_chain(attrs={"underlying": "XYZ"}))
    failed = schema.empty_surface("FAIL", status=schema.SurfaceStatus.FAILED, message="boom")
    fewer = schema.build_surface_dataset(
        "FEW", spx.expiry.values[:2], {}, cleaning_reasons=("zero_bid", "other_reason")
    )
    for surfaces in ([spx, jpm, empty, failed, fewer], [failed, jpm], [jpm]):
        stacked = schema.stack_surfaces(surfaces)
        expected = _stack_through_xarray(surfaces)
        xr.testing.assert_identical(stacked, expected)
        assert list(stacked.data_vars) == list(expected.data_vars)
        for name, variable in stacked.variables.items():
            assert variable.dtype == expected[name].dtype, name
            if variable.dtype == object:  # strings, never 0-d arrays inside object arrays
                assert all(isinstance(x, str) for x in variable.values.ravel().tolist()), name
    # A surface with an extra variable takes the xarray path and keeps it.
    extra = jpm.assign(note=("expiry", np.arange(jpm.sizes["expiry"], dtype=np.float64)))
    stacked = schema.stack_surfaces([spx.assign(note=("expiry", np.zeros(spx.sizes["expiry"]))),
                                     extra])  # fmt: skip
    assert stacked.note.dims == ("underlying", "expiry")
    np.testing.assert_array_equal(
        stacked.note.sel(underlying="JPM", expiry=jpm.expiry.values).values,
        np.arange(jpm.sizes["expiry"]),
    )


def test_build_surface_dataset__coordinates_are_each_surfaces_own(spx: xr.Dataset) -> None:
    one = schema.build_surface_dataset("ONE", spx.expiry.values[:3], {})
    two = schema.build_surface_dataset("TWO", spx.expiry.values[:3], {})
    one.delta_label.values[0] = "changed"
    one.tenor_years.values[0] = -1.0
    assert two.delta_label.values[0] == "10P"
    assert two.tenor_years.values[0] == 7 / 365
    assert one.cleaning_reason.size == 0
    schema.validate_surface(two)


def test_arbitrage_checks__all_slices_at_once_match_slice_by_slice() -> None:
    vogt = SviParams(-0.0410, 0.1331, 0.3060, 0.3586, 0.4153)  # GJ Example 3.1: g < 0
    raws = [
        SviParams(0.01, 0.1, -0.6, 0.02, 0.1),
        vogt,
        SviParams(0.02, 0.12, -0.5, 0.0, 0.05),  # crosses the slice before it in the wings
        SviParams(0.04, 1.5, 0.6, 0.1, 0.2),  # Lee's bound fails: b (1 + |rho|) > 2
        SviParams(0.06, 0.15, -0.4, 0.05, 0.2),
    ]
    got = _arbitrage_checks(raws)
    expected = _arbitrage_checks_by_slice(raws)
    np.testing.assert_array_equal(got[0], expected[0])  # butterfly violations
    np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=1e-14)  # min g
    np.testing.assert_array_equal(got[2], expected[2])  # calendar crossings
    assert got[0][1] > 0  # Vogt's slice is caught
    assert got[1][1] < 0
    assert got[0][3] >= 1  # and the Lee-bound breach
    assert (got[2][1:] > 0).any()
    # NaN parameters take the slice-by-slice path.
    with_nan = [*raws[:2], SviParams.nan()]
    for got_part, expected_part in zip(
        _arbitrage_checks(with_nan), _arbitrage_checks_by_slice(with_nan), strict=True
    ):
        np.testing.assert_array_equal(got_part, expected_part)
