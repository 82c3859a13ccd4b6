"""Test configuration: float64 available everywhere; tests choose their dtype explicitly."""

import os
import pathlib

import jax
import pytest

jax.config.update("jax_enable_x64", True)

SHARED = pathlib.Path(os.environ.get("GANTK_SHARED", pathlib.Path(__file__).parents[2] / "shared"))
GEOMLOSS_IMAGES = SHARED / "data" / "geomloss_images"


@pytest.fixture
def geomloss_images():
    """Folder with the paper's density PNGs (../shared); skips if it is absent."""
    if not GEOMLOSS_IMAGES.is_dir():
        pytest.skip(f"shared images not found at {GEOMLOSS_IMAGES}")
    return GEOMLOSS_IMAGES
