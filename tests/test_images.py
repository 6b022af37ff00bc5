"""gair.images: images decode as a person sees them (orientation, depth, colour, alpha, size)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from gair.images import MAX_BYTES, MAX_PIXELS, MAX_SIDE, decode_image, read_image

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255,) * 3, (0, 0, 0)


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(a: np.ndarray, width: int | None = None, height: int | None = None) -> bytes:
    """uint16 [H, W] (grey) or [H, W, 3] (RGB) -> a 16-bit PNG, written by hand (Pillow cannot
    write 16-bit RGB). width/height override the header's size (for a header-only file)."""
    h, w = a.shape[:2]
    colour = 0 if a.ndim == 2 else 2
    ihdr = struct.pack(">IIBBBBB", width or w, height or h, 16, colour, 0, 0, 0)
    rows = b"".join(b"\0" + a[y].astype(">u2").tobytes() for y in range(h))
    body = b"" if width else _chunk(b"IDAT", zlib.compress(rows))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + body + _chunk(b"IEND", b"")


def _scene(h: int = 48, w: int = 64) -> np.ndarray:
    """An asymmetric uint8 RGB [h, w, 3] image: four flat quadrants and a gradient row band."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = RED
    a[: h // 2, w // 2 :] = GREEN
    a[h // 2 :, : w // 2] = BLUE
    a[h // 2 :, w // 2 :] = (250, 200, 30)
    a[h // 2 - 4 : h // 2 + 4] = np.linspace(0, 255, w, dtype=np.uint8)[None, :, None]
    return a


# What a file stores so that a viewer applying EXIF orientation o shows `u` (EXIF 2.3, Table 6:
# where the 0th row and 0th column of the stored image lie in the visual image).
STORED = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],  # mirrored left-right
    3: lambda u: u[::-1, ::-1],  # upside down
    4: lambda u: u[::-1, :],  # mirrored top-bottom
    5: lambda u: u.transpose(1, 0, 2),  # 0th row = left side, 0th column = top
    6: lambda u: np.rot90(u, 1),  # 0th row = right side, 0th column = top (camera turned CW)
    7: lambda u: u[::-1, ::-1].transpose(1, 0, 2),  # 0th row = right side, 0th column = bottom
    8: lambda u: np.rot90(u, -1),  # 0th row = left side, 0th column = bottom
}


def _with_orientation(upright: np.ndarray, o: int, fmt: str, **kw) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = o
    im = Image.fromarray(np.ascontiguousarray(STORED[o](upright)))
    return _encode(im, fmt, exif=exif.tobytes(), **kw)


@pytest.mark.parametrize("o", range(1, 9))
def test_exif_orientation_png_is_exact(o):
    up = _scene()
    out = decode_image(_with_orientation(up, o, "PNG"), f"o{o}.png")
    assert out.dtype == np.uint8 and out.shape == up.shape
    np.testing.assert_array_equal(out, up)


@pytest.mark.parametrize("o", [3, 6, 8])
def test_exif_orientation_jpeg_equals_upright_twin(o):
    up = _scene()
    twin = decode_image(_encode(Image.fromarray(up), "JPEG", quality=95), "twin.jpg")
    out = decode_image(_with_orientation(up, o, "JPEG", quality=95), f"o{o}.jpg")
    assert out.shape == up.shape
    diff = np.abs(out.astype(int) - twin.astype(int))
    assert diff.mean() < 3 and np.percentile(diff, 99) < 40  # JPEG loss, not a rotation
    assert np.abs(out[5, 5].astype(int) - RED).max() < 12
    assert np.abs(out[-5, 5].astype(int) - BLUE).max() < 12


def test_large_rotated_jpeg_is_drafted_and_upright(monkeypatch):
    from PIL import JpegImagePlugin

    decoded_sizes = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        result = draft(self, mode, size)
        decoded_sizes.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    up = np.kron(_scene(48, 64), np.ones((64, 64, 1), np.uint8))  # 3072 x 4096
    out = decode_image(_with_orientation(up, 6, "JPEG", quality=90), "phone.jpg")
    assert decoded_sizes == [(1536, 2048)]  # stored sideways, decoded at 1/2 scale
    assert out.shape == (MAX_SIDE * 3 // 4, MAX_SIDE, 3)
    assert np.abs(out[100, 100].astype(int) - RED).max() < 12
    assert np.abs(out[100, -100].astype(int) - GREEN).max() < 12
    assert np.abs(out[-100, 100].astype(int) - BLUE).max() < 12


def test_16bit_grey_png_equals_its_8bit_twin():
    u8 = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    twin = decode_image(_encode(Image.fromarray(u8), "PNG"), "twin.png")
    np.testing.assert_array_equal(twin, np.repeat(u8[..., None], 3, 2))
    for data in (
        _png(u8.astype(np.uint16) * 257),
        _encode(Image.fromarray(u8.astype(np.uint16) * 257), "PNG"),  # Pillow's writer
        _encode(Image.fromarray((u8.astype(np.uint16) * 257).astype(">u2")), "TIFF"),  # I;16B
        _encode(Image.fromarray(u8.astype(np.int32) * 257), "TIFF"),  # mode I
        _png(u8.astype(np.uint16)),  # 8-bit values in a 16-bit container
    ):
        np.testing.assert_array_equal(decode_image(data, "deep.png"), twin)


def test_16bit_dark_scene_stays_dark():
    a = np.linspace(0, 5000, 64).astype(np.uint16)[None, :].repeat(8, 0)  # under 8% of white
    out = decode_image(_png(a), "night.png")
    np.testing.assert_array_equal(out[..., 0], np.rint(a / 257).astype(np.uint8))
    assert out.max() == 19  # the dtype's range, not the image's own 0..5000 stretched to white


def test_16bit_rgb_png_equals_its_8bit_twin():
    u8 = _scene()
    np.testing.assert_array_equal(decode_image(_png(u8.astype(np.uint16) * 257), "rgb16.png"), u8)
    a16 = np.random.default_rng(1).integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    out = decode_image(_png(a16), "rgb16.png")
    assert np.abs(out.astype(int) - np.rint(a16 / 257)).max() <= 1


def test_float_tiff_in_unit_range_equals_its_8bit_twin():
    u8 = np.random.default_rng(2).integers(0, 256, (30, 40), dtype=np.uint8)
    f = (u8 / 255.0).astype(np.float32)
    out = decode_image(_encode(Image.fromarray(f), "TIFF"), "unit.tif")
    assert np.abs(out[..., 0].astype(int) - u8).max() <= 1
    assert (out[..., 0] == out[..., 2]).all()


def test_float_tiff_other_range_is_scaled_not_black():
    f = np.linspace(-40.0, 3000.0, 30 * 40, dtype=np.float32).reshape(30, 40)
    f[0, 0], f[0, 1], f[0, 2] = np.nan, np.inf, -np.inf
    out = decode_image(_encode(Image.fromarray(f), "TIFF"), "elev.tif")[..., 0]
    lo, hi = f[0, 3], f[-1, -1]
    expect = np.rint((f[1:] - lo) / (hi - lo) * 255)
    assert np.abs(out[1:].astype(int) - expect).max() <= 1
    assert out.max() == 255 and out[-1].mean() > 200
    assert (out[0, :3] == 0).all()  # NaN and +-inf -> black
    nan = np.full((4, 4), np.nan, np.float32)
    with pytest.raises(ValueError, match=r"nan\.tif.*no pixel value is finite"):
        decode_image(_encode(Image.fromarray(nan), "TIFF"), "nan.tif")


def test_32bit_integer_outside_16bit_range_is_scaled_by_its_range():
    a = np.array([[-1000, 0, 60_000, 100_000]], np.int32)
    out = decode_image(_encode(Image.fromarray(a), "TIFF"), "counts.tif")[..., 0]
    assert out.tolist() == [[0, 3, 154, 255]]


def test_palette_with_transparency_over_white():
    p = Image.new("P", (4, 1))
    p.putpalette([*RED, *GREEN, *BLUE] + [0] * (253 * 3))
    p.putdata([0, 1, 2, 2])
    for fmt in ("PNG", "GIF"):
        out = decode_image(_encode(p, fmt, transparency=2), f"pal.{fmt.lower()}")
        assert [tuple(c) for c in out[0]] == [RED, GREEN, WHITE, WHITE]
    # per-entry alpha (tRNS with several values): red at 50 % over white is pink
    out = decode_image(_encode(p, "PNG", transparency=bytes([128, 255, 0])), "pal-alpha.png")
    assert tuple(out[0, 0]) in ((255, 127, 127), (255, 128, 128))
    assert [tuple(c) for c in out[0, 1:]] == [GREEN, WHITE, WHITE]
    # no transparency: the palette colours
    out = decode_image(_encode(p, "PNG"), "pal.png")
    assert [tuple(c) for c in out[0]] == [RED, GREEN, BLUE, BLUE]


def test_rgba_and_la_over_white():
    rgba = Image.new("RGBA", (4, 1))
    rgba.putdata([(0, 0, 255, 0), (0, 0, 255, 255), (0, 0, 0, 128), (255, 0, 0, 255)])
    out = decode_image(_encode(rgba, "PNG"), "rgba.png")
    assert tuple(out[0, 0]) == WHITE and tuple(out[0, 1]) == BLUE and tuple(out[0, 3]) == RED
    assert all(126 <= v <= 128 for v in out[0, 2])
    la = Image.new("LA", (3, 1))
    la.putdata([(0, 0), (0, 255), (100, 255)])
    out = decode_image(_encode(la, "PNG"), "la.png")
    assert [tuple(c) for c in out[0]] == [WHITE, BLACK, (100, 100, 100)]
    grey_trns = Image.new("L", (2, 1))
    grey_trns.putdata([7, 50])
    out = decode_image(_encode(grey_trns, "PNG", transparency=7), "trns.png")
    assert [tuple(c) for c in out[0]] == [WHITE, (50, 50, 50)]


def test_cmyk_one_bit_and_grey():
    cmyk = Image.new("CMYK", (4, 1))
    cmyk.putdata([(0, 255, 255, 0), (255, 0, 255, 0), (0, 0, 0, 255), (0, 0, 0, 0)])
    expect = np.array([[RED, GREEN, BLACK, WHITE]])
    np.testing.assert_array_equal(decode_image(_encode(cmyk, "TIFF"), "cmyk.tif"), expect)
    # CMYK JPEG: Pillow writes and reads Adobe's inverted convention
    big = cmyk.resize((64, 16), Image.Resampling.NEAREST)
    out = decode_image(_encode(big, "JPEG", quality=95), "cmyk.jpg")
    for i, colour in enumerate(expect[0]):
        assert np.abs(out[8, 16 * i + 8].astype(int) - colour).max() < 12
    one = Image.new("1", (4, 1))
    one.putdata([0, 255, 0, 255])
    out = decode_image(_encode(one, "PNG"), "bits.png")
    assert [tuple(c) for c in out[0]] == [BLACK, WHITE, BLACK, WHITE]
    grey = Image.fromarray(np.array([[0, 77, 200]], np.uint8))
    out = decode_image(_encode(grey, "PNG"), "grey.png")
    assert [tuple(c) for c in out[0]] == [BLACK, (77, 77, 77), (200, 200, 200)]


def test_srgb_icc_profile_keeps_colours_and_a_broken_one_is_ignored():
    from PIL import ImageCms

    up = _scene()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = decode_image(_encode(Image.fromarray(up), "PNG", icc_profile=srgb), "srgb.png")
    assert np.abs(out.astype(int) - up).max() <= 2
    out = decode_image(_encode(Image.fromarray(up), "PNG", icc_profile=b"junk"), "junk-icc.png")
    np.testing.assert_array_equal(out, up)


def test_animated_gif_gives_the_first_frame():
    frames = [Image.new("RGB", (8, 8), c).convert("P") for c in (RED, BLUE)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    out = decode_image(data, "anim.gif")
    assert out.shape == (8, 8, 3) and (out == RED).all()


def test_large_images_are_downscaled_keeping_aspect():
    a = np.zeros((1000, 3000, 3), np.uint8)
    a[:, :1500] = GREEN
    a[:, 1500:] = BLUE
    out = decode_image(_encode(Image.fromarray(a), "PNG"), "wide.png")
    assert out.shape == (683, MAX_SIDE, 3)
    assert tuple(out[300, 10]) == GREEN and tuple(out[300, -10]) == BLUE
    small = decode_image(_encode(Image.fromarray(a[:100, :200]), "PNG"), "small.png")
    assert small.shape == (100, 200, 3)  # never upscaled


def test_over_budget_images_are_refused_before_decoding():
    w, h = 10_000, MAX_PIXELS // 10_000 + 1  # just over the limit, under Pillow's own guard
    with pytest.raises(ValueError, match=r"big\.png is 10000x5001 px .*limit is 50 Mpx"):
        decode_image(_png(np.zeros((1, 1), np.uint16), width=w, height=h), "big.png")
    with pytest.raises(ValueError, match=r"huge\.png is over \d+ Mpx; the limit is 50 Mpx"):
        decode_image(_png(np.zeros((1, 1), np.uint16), width=100_000, height=100_000), "huge.png")
    one_bit = _encode(Image.new("1", (8000, 8000)), "PNG")  # 64 Mpx in a few kB
    with pytest.raises(ValueError, match=r"bomb\.png is 8000x8000 px"):
        decode_image(one_bit, "bomb.png")


def test_unreadable_inputs_are_value_errors_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"page\.png is not a readable image"):
        decode_image(b"<html>hello</html>", "page.png")
    with pytest.raises(ValueError, match=r"empty\.jpg is empty"):
        decode_image(b"", "empty.jpg")
    with pytest.raises(ValueError, match=r"big\.jpg is 20\.0 MB; the limit is 20 MB"):
        decode_image(b"\0" * (MAX_BYTES + 1), "big.jpg")
    jpeg = _encode(Image.fromarray(np.kron(_scene(), np.ones((8, 8, 1), np.uint8))), "JPEG")
    with pytest.raises(ValueError, match=r"cut\.jpg is not a readable image: .*truncated"):
        decode_image(jpeg[: len(jpeg) // 2], "cut.jpg")  # scan data cut: fails in decoding
    with pytest.raises(ValueError, match=r"head\.jpg is not a readable image \(not a JPEG/"):
        decode_image(jpeg[:100], "head.jpg")  # header cut
    png = _encode(Image.fromarray(_scene()), "PNG")
    with pytest.raises(ValueError, match=r"cut\.png is not a readable image"):
        decode_image(png[: len(png) // 2], "cut.png")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(ValueError, match=r"x\.eps is not a readable image"):
        decode_image(eps, "x.eps")  # never handed to Ghostscript
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match="is a directory"):
        read_image(tmp_path)
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"photo\.jpg is not a readable image"):
        read_image(path)
    path.write_bytes(_with_orientation(_scene(), 6, "PNG"))
    np.testing.assert_array_equal(read_image(path), _scene())


def test_broken_exif_is_ignored():
    data = _encode(Image.fromarray(_scene()), "JPEG", quality=95, exif=b"Exif\0\0garbage!")
    out = decode_image(data, "bad-exif.jpg")
    assert out.shape == (48, 64, 3) and np.abs(out[5, 5].astype(int) - RED).max() < 12
