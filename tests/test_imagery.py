"""Band maps of the three image sources on small GeoTIFFs written here; indices;
files that are not what they claim give an ImageryError that says what is wrong."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import Affine
from rasterio.windows import Window

from agri.analytics import imagery
from agri.analytics.imagery import ImageryError, open_image, read_window


def north_up(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """rasterio's from_origin, without its deprecated Affine product."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)

DRONE_TRANSFORM = north_up(-30_000.0, 50_000.0, 0.05, 0.05)  # EPSG:6678, 5 cm
UTM_TRANSFORM = north_up(480_000.0, 4_500_000.0, 10.0, 10.0)  # EPSG:32654, 10 m


def write_tif(path: Path, data: np.ndarray, *, crs: str | None = "EPSG:6678",
              transform=DRONE_TRANSFORM, descriptions: list[str] | None = None,
              tags: dict[str, str] | None = None, nodata: float | None = None,
              driver: str = "GTiff") -> Path:
    profile = {"driver": driver, "width": data.shape[2], "height": data.shape[1],
               "count": data.shape[0], "dtype": data.dtype.name}
    if crs is not None:
        profile |= {"crs": crs, "transform": transform}
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # files without a CRS
        dst = rasterio.open(path, "w", **profile)
    with dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
    return path


def _read_all(image: imagery.Image) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(image.path) as ds:
        return read_window(ds, image, Window(0, 0, image.width, image.height))


def test_drone_bands_found_by_description_in_any_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truth = {b: rng.uniform(0.01, 0.6, (6, 7)).astype(np.float32) for b in imagery.DRONE_P4M.bands}
    truth["red"][2, 3] = -1.0  # nodata in one band only
    order = ["nir", "Red", "green", "blue", "Red Edge"]  # case and spacing as writers vary
    data = np.stack([truth[o.lower().replace(" ", "_")] for o in order])
    acquired = "2025-08-05T10:12:00+09:00"
    path = write_tif(tmp_path / "p4m.tif", data, descriptions=order, nodata=-1.0,
                     tags={"AGRI_SOURCE": "drone-p4m", "acquired": acquired})
    image = open_image(path)
    assert image.source == "drone-p4m"
    assert dict(image.band_index) == {"nir": 1, "red": 2, "green": 3, "blue": 4, "red_edge": 5}
    assert image.acquired == datetime(2025, 8, 5, 10, 12, tzinfo=timezone(timedelta(hours=9)))
    assert image.indices == ("ndvi", "gndvi", "ndre")
    refl, valid = _read_all(image)
    for i, band in enumerate(image.bands):
        np.testing.assert_array_equal(refl[i], truth[band])
    assert not valid[2, 3] and valid.sum() == valid.size - 1


def test_drone_without_descriptions_uses_the_source_order(tmp_path: Path) -> None:
    data = np.stack([np.full((3, 3), v, np.float32) for v in (0.1, 0.2, 0.3, 0.4, 0.5)])
    data[:, 0, 0] = np.nan
    path = write_tif(tmp_path / "plain.tif", data, tags={"AGRI_SOURCE": "drone-p4m"})
    image = open_image(path)
    refl, valid = _read_all(image)
    assert refl[:, 1, 1].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert not valid[0, 0] and valid.sum() == 8
    assert image.acquired is None


def test_sentinel2_offset_scale_nodata_and_scene_classes(tmp_path: Path) -> None:
    dn = np.array([[1000, 2000, 0, 1500], [3000, 1200, 1800, 900]], dtype=np.uint16)
    scl = np.array([[4, 4, 4, 3], [8, 9, 10, 5]], dtype=np.uint16)
    bands = [dn, dn + 100, dn + 200, dn + 300]
    bands = [np.where(dn == 0, 0, b).astype(np.uint16) for b in bands]
    # Band order in the file differs from the band map's; descriptions say which is which.
    data = np.stack([bands[3], scl, bands[0], bands[1], bands[2]])
    path = write_tif(tmp_path / "s2.tif", data, crs="EPSG:32654", transform=UTM_TRANSFORM,
                     descriptions=["B08", "SCL", "B03", "B04", "B05"], nodata=0,
                     tags={"AGRI_SOURCE": "sentinel-2-l2a",
                           "ACQUIRED": "2025-08-05T01:35:00+00:00"})
    image = open_image(path)
    assert image.indices == ("ndvi", "gndvi", "ndre")
    assert image.acquired == datetime(2025, 8, 5, 1, 35, tzinfo=UTC)
    refl, valid = _read_all(image)
    green = image.bands.index("green")
    nir = image.bands.index("nir")
    assert refl[green, 0, 1] == pytest.approx((2000 - 1000) / 10_000)
    assert refl[nir, 0, 1] == pytest.approx((2300 - 1000) / 10_000)
    assert refl[green, 1, 3] == pytest.approx((900 - 1000) / 10_000)  # dark water: below 0
    # valid: vegetation (4) and not vegetated (5) with data; DN 0, shadow, clouds, cirrus not.
    assert valid.tolist() == [[True, True, False, False], [False, False, False, True]]


def test_sentinel2_older_baseline_offset_from_its_tag(tmp_path: Path) -> None:
    data = np.stack([np.full((2, 2), 2500, np.uint16)] * 4 + [np.full((2, 2), 4, np.uint16)])
    path = write_tif(tmp_path / "s2-2021.tif", data, crs="EPSG:32654", transform=UTM_TRANSFORM,
                     tags={"AGRI_SOURCE": "sentinel-2-l2a", "BOA_ADD_OFFSET": "0"})
    refl, _ = _read_all(open_image(path))
    assert refl[0, 0, 0] == pytest.approx(0.25)


def test_commercial_has_no_ndre(tmp_path: Path) -> None:
    data = np.stack([np.full((4, 4), v, np.uint16) for v in (500, 800, 600, 3000)])
    data[:, 3, 3] = 0
    path = write_tif(tmp_path / "spot.tif", data, crs="EPSG:32654", transform=UTM_TRANSFORM,
                     descriptions=["blue", "green", "red", "nir"],
                     tags={"AGRI_SOURCE": "commercial-2m"})
    image = open_image(path)
    assert image.bands == ("blue", "green", "red", "nir")
    assert image.indices == ("ndvi", "gndvi")
    refl, valid = _read_all(image)
    assert refl[:, 0, 0].tolist() == pytest.approx([0.05, 0.08, 0.06, 0.30])
    assert not valid[3, 3] and valid.sum() == 15


def test_source_given_by_the_caller_overrides_the_tag(tmp_path: Path) -> None:
    data = np.stack([np.full((2, 2), 1000, np.uint16)] * 4)
    path = write_tif(tmp_path / "x.tif", data, crs="EPSG:32654", transform=UTM_TRANSFORM,
                     tags={"AGRI_SOURCE": "drone-p4m"})
    assert open_image(path, source="commercial-2m").source == "commercial-2m"


def test_indices() -> None:
    nir = np.array([0.5, 0.4, 0.0], dtype=np.float32)
    red = np.array([0.1, 0.4, 0.0], dtype=np.float32)
    ndvi = imagery.index("ndvi", {"nir": nir, "red": red})
    assert ndvi.dtype == np.float32
    assert ndvi[:2].tolist() == pytest.approx([0.4 / 0.6, 0.0])
    assert np.isnan(ndvi[2])
    gndvi = imagery.index("gndvi", {"nir": nir, "green": np.float32([0.1, 0.2, 0.3])})
    assert gndvi[1] == pytest.approx(0.2 / 0.6)
    ndre = imagery.index("ndre", {"nir": nir, "red_edge": np.float32([0.3, 0.2, 0.1])})
    assert ndre[0] == pytest.approx(0.2 / 0.8)
    with pytest.raises(ImageryError, match="red_edge"):
        imagery.index("ndre", {"nir": nir, "red": red})
    with pytest.raises(ImageryError, match="unknown index"):
        imagery.index("evi", {"nir": nir, "red": red})


# --- hostile files ------------------------------------------------------------


def _drone(tmp_path: Path, name: str = "d.tif", bands: int = 5, **kw) -> Path:
    kw.setdefault("tags", {"AGRI_SOURCE": "drone-p4m"})
    return write_tif(tmp_path / name, np.zeros((bands, 3, 3), np.float32), **kw)


def test_not_a_geotiff(tmp_path: Path) -> None:
    text = tmp_path / "survey.tif"
    text.write_text("this is not an image\n")
    with pytest.raises(ImageryError, match="not a readable GeoTIFF"):
        open_image(text)
    png = write_tif(tmp_path / "survey.png", np.zeros((3, 4, 4), np.uint8), crs=None,
                    driver="PNG")
    with pytest.raises(ImageryError, match="PNG file, not a GeoTIFF"):
        open_image(png, source="drone-p4m")
    with pytest.raises(ImageryError, match="not a readable GeoTIFF"):
        open_image(tmp_path / "missing.tif")


def test_two_band_geotiff_names_the_missing_bands(tmp_path: Path) -> None:
    plain = _drone(tmp_path, "two.tif", bands=2)
    with pytest.raises(ImageryError, match=r"2 bands .* drone-p4m image has 5 \(blue, green, "
                                           r"red, red_edge, nir"):
        open_image(plain)
    named = _drone(tmp_path, "named.tif", bands=2, descriptions=["red", "nir"])
    with pytest.raises(ImageryError, match="missing blue, green, red_edge"):
        open_image(named)


def test_unknown_or_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ImageryError, match="unknown source 'landsat-9'.*drone-p4m"):
        open_image(_drone(tmp_path, tags={"AGRI_SOURCE": "landsat-9"}))
    with pytest.raises(ImageryError, match="no AGRI_SOURCE tag"):
        open_image(_drone(tmp_path, "untagged.tif", tags={}))


def test_no_crs_or_no_geotransform(tmp_path: Path) -> None:
    with pytest.raises(ImageryError, match="no CRS; georeference the image .*EPSG:6678"):
        open_image(_drone(tmp_path, crs=None))
    with pytest.raises(ImageryError, match="no geotransform"):
        open_image(_drone(tmp_path, "identity.tif", transform=Affine.identity()))


def test_wrong_data_type_for_the_source(tmp_path: Path) -> None:
    path = write_tif(tmp_path / "u16.tif", np.zeros((5, 3, 3), np.uint16),
                     tags={"AGRI_SOURCE": "drone-p4m"})
    with pytest.raises(ImageryError, match="uint16; drone-p4m images store float32"):
        open_image(path)


def test_duplicate_band_descriptions(tmp_path: Path) -> None:
    path = _drone(tmp_path, descriptions=["blue", "green", "red", "nir", "nir"])
    with pytest.raises(ImageryError, match=r"bands \[4, 5\] are all described as nir"):
        open_image(path)


def test_bad_tags(tmp_path: Path) -> None:
    with pytest.raises(ImageryError, match="ACQUIRED='yesterday' is not an ISO 8601 time"):
        open_image(_drone(tmp_path, tags={"AGRI_SOURCE": "drone-p4m", "ACQUIRED": "yesterday"}))
    s2 = write_tif(tmp_path / "s2.tif", np.zeros((5, 2, 2), np.uint16), crs="EPSG:32654",
                   transform=UTM_TRANSFORM,
                   tags={"AGRI_SOURCE": "sentinel-2-l2a", "BOA_ADD_OFFSET": "minus"})
    with pytest.raises(ImageryError, match="BOA_ADD_OFFSET='minus' is not a number"):
        open_image(s2)
