"""The ``periscope`` CLI on a published run (runs list/show, plot surface) and the plotting."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app
from periscope import schema
from periscope.errors import InvalidInputError
from periscope.plotting import plot_surface, quote_volatilities

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_runs_list__shows_the_published_run_as_latest(published_root: tuple[Path, str]) -> None:
    root, run_id = published_root
    result = runner.invoke(app, ["runs", "list", "--root", str(root)], env=WIDE)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if run_id in line)
    assert "*" in line
    assert "yes" in line
    assert "end-of-day" in line


def test_runs_list__empty_root_says_how_to_make_a_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["runs", "list", "--root", str(tmp_path)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "No runs yet" in result.output


def test_runs_show__latest_lists_groups_and_dimensions(published_root: tuple[Path, str]) -> None:
    root, run_id = published_root
    result = runner.invoke(app, ["runs", "show", "--root", str(root)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert run_id in result.output
    assert "contract=78" in result.output
    assert "underlying=1" in result.output
    shown = runner.invoke(app, ["runs", "show", run_id, "--root", str(root)], env=WIDE)
    assert shown.exit_code == 0
    missing = runner.invoke(
        app, ["runs", "show", "20260101T000000Z-000000", "--root", str(root)], env=WIDE
    )
    assert missing.exit_code == 1
    assert "No run" in missing.output


def test_plot_surface__writes_a_real_png(published_root: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = published_root
    out = tmp_path / "plots" / "xyz.png"
    result = runner.invoke(
        app, ["plot", "surface", "XYZ", "--out", str(out), "--root", str(root)], env=WIDE
    )
    assert result.exit_code == 0, result.output
    width, height = png_size(out)
    assert (width, height) == (1430, 572)  # 13 x 5.2 inches at 110 dpi
    assert out.stat().st_size > 30_000
    import matplotlib.image

    pixels = matplotlib.image.imread(out)
    assert pixels[..., :3].std() > 0.1  # a picture, not a blank canvas
    unknown = runner.invoke(
        app, ["plot", "surface", "NOPE", "--out", str(out), "--root", str(root)], env=WIDE
    )
    assert unknown.exit_code == 1
    assert "XYZ" in unknown.output


def test_quote_volatilities__recover_the_surface_the_quotes_were_priced_with(
    synthetic_data: tuple, smile: Callable[..., np.ndarray]
) -> None:
    surface, chain = synthetic_data
    quotes = quote_volatilities(chain, surface)
    assert len(quotes) == 3
    times = surface[schema.TIME_TO_EXPIRY].values
    for j, day in enumerate(surface[schema.EXPIRY].values):
        k, iv = quotes[day]
        assert k.size == 13  # one out-of-the-money quote per strike
        np.testing.assert_allclose(iv, smile(k, times[j]), rtol=1e-9)


def test_plot_surface__rejects_a_surface_with_nothing_published(tmp_path: Path) -> None:
    empty = schema.empty_surface("XYZ", np.array(["2026-03-20"], dtype="datetime64[D]"))
    with pytest.raises(InvalidInputError, match="no published expiry"):
        plot_surface(empty, tmp_path / "x.png")
