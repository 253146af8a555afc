"""Image files as new rows (``data.image_files``): Pillow's channels, sizes never changed, every refusal named."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from distillery.data.image_files import read_images
from distillery.data.inputs import read_rows
from distillery.errors import DistilleryError

GREY = {"kind": "array", "pixel_max": 255.0, "label_names": ["0", "1"], "shape": [2, 3],
        "scaling": {"param": "auto", "scaler": "none"}}


def test_a_colour_file_for_a_grey_model_is_converted_by_luma_and_divided_to_0_1(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 2] = (0, 0, 200)
    Image.fromarray(rgb).save(tmp_path / "red.png")
    names, values = read_images(GREY, tmp_path / "red.png")
    assert names == [str(tmp_path / "red.png")] and values.shape == (1, 2, 3) and values.dtype == np.float32
    # ITU-R 601-2 luma, L = R 299/1000 + G 587/1000 + B 114/1000, rounded: 76.245 -> 76 and 22.8 -> 23
    expected = np.zeros((2, 3), np.float32)
    expected[0, 0], expected[1, 2] = 76 / np.float32(255), 23 / np.float32(255)
    np.testing.assert_array_equal(values[0], expected)


def test_a_grey_file_for_a_one_channel_model_gets_its_channel_axis(tmp_path):
    Image.fromarray(np.full((2, 3), 51, np.uint8)).save(tmp_path / "g.png")
    _, values = read_images({**GREY, "shape": [1, 2, 3], "channels": "last"}, tmp_path / "g.png")
    np.testing.assert_array_equal(values, np.full((1, 1, 2, 3), np.float32(51) / np.float32(255)))


def test_rows_of_image_files_are_scaled_as_the_model_s_source_was(tmp_path):
    Image.fromarray(np.full((2, 3), 255, np.uint8)).save(tmp_path / "white.png")
    record = {**GREY, "scaling": {"param": "standard", "scaler": "standard", "mean": [0.5] * 6, "scale": [0.25] * 6}}
    rows = read_rows(record, tmp_path / "white.png")
    assert rows.ids.tolist() == [0] and rows.files == [str(tmp_path / "white.png")]
    np.testing.assert_allclose(rows.inputs, np.full((1, 2, 3), 2.0))  # (1 - 0.5) / 0.25


@pytest.mark.parametrize("make, record, message", [
    (lambda d: [Image.fromarray(np.zeros((h, w), np.uint8)).save(d / f"{w}.png") for h, w in ((2, 3), (4, 4), (3, 2))],
     GREY, "the model takes images of 3x2 pixels (width x height) and sizes are not changed; 2 of 3 files differ: "
           "['2.png 2x3', '4.png 4x4']"),
    (lambda d: (d / "x.png").write_text("no image"), GREY, "x.png: not readable as an image: "),
    (lambda d: None, GREY, "a folder without image files (.png, .jpg"),
    (lambda d: Image.fromarray(np.zeros((2, 3), np.uint8)).save(d / "a.png"), {**GREY, "pixel_max": None},
     "this model learnt from arrays that are no image pixels"),
    (lambda d: Image.fromarray(np.zeros((2, 3), np.uint8)).save(d / "a.png"), {**GREY, "shape": [5, 2, 3]},
     "this model takes arrays of shape [5, 2, 3], not images of 1, 3 or 4 channels"),
])
def test_what_cannot_be_the_model_s_images_is_refused_naming_the_files(tmp_path, make, record, message):
    make(tmp_path)
    with pytest.raises(DistilleryError, match=re.escape(message)):
        read_images(record, tmp_path)


def test_a_missing_file_and_npz_options_are_refused(tmp_path):
    with pytest.raises(DistilleryError, match="gone.png: file not found"):
        read_images(GREY, tmp_path / "gone.png")
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DistilleryError, match="--array and --pixels-as-given are for .npy and .npz files"):
        read_rows(GREY, tmp_path / "a.png", pixels_as_given=True)


def test_a_16_bit_image_is_refused_not_clipped(tmp_path):
    """Pillow's convert('L') clipped 16-bit values to 255: 98 % of the pixels came out white."""
    Image.fromarray((np.arange(6).reshape(2, 3) * 1000).astype(np.uint16)).save(tmp_path / "g16.png")
    with pytest.raises(DistilleryError, match=re.escape("g16.png: an image of mode I;16 (16-bit or float values); "
                                                        "the model takes 8-bit images")):
        read_images(GREY, tmp_path / "g16.png")


def test_a_photo_is_turned_upright_by_its_exif_orientation_and_a_palette_image_read_by_its_colours(tmp_path):
    stored = np.arange(6, dtype=np.uint8).reshape(3, 2) * 40  # 2 wide, 3 high as stored
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display (3 wide, 2 high)
    image.save(tmp_path / "r.png", exif=exif)
    _, values = read_images(GREY, tmp_path / "r.png")  # the model takes 3 wide x 2 high
    np.testing.assert_array_equal(values[0], np.rot90(stored, -1) / np.float32(255))
    palette = Image.fromarray(np.array([[0, 1, 1], [1, 0, 0]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    palette.save(tmp_path / "p.png")
    _, values = read_images(GREY, tmp_path / "p.png")
    np.testing.assert_array_equal(values[0], np.array([[0, 1, 1], [1, 0, 0]], np.float32))
