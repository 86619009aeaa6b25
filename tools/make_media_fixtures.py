"""Fixtures for Tests/MediaTests (PNG/JPEG decoding, YCbCr, .npy reading). About 60 kB in all.

PNGs are written by the small, independent encoder below (every colour type and bit depth, palette
with and without tRNS, tRNS on gray/RGB, Adam7 interlacing) and checked against Pillow's decoder;
the expected samples are what a PNG decoder must return after Backdrop's documented expansions
(palette → RGB or RGBA, tRNS → alpha, 1/2/4-bit gray → 8 bits, 16 bits kept). JPEGs are crops of
scikit-image's public-domain astronaut photo saved by Pillow (baseline, progressive, grayscale) with
Pillow's decoded pixels as the reference (both sides use libjpeg-turbo's default IDCT). The .npy
files cover format versions 1.0–3.0, string and numeric dtypes, Fortran order and big-endian data.

usage: python tools/make_media_fixtures.py [--check-npy FILE.npy EXPECTED.json]
       (the second form is how the Swift tests check that numpy reads Swift-written .npy files)
"""
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "media")


# --- a minimal PNG encoder -------------------------------------------------------------------

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(samples, bit_depth):
    """Packs one row of integer samples at `bit_depth` bits (MSB first), with filter type 0."""
    if bit_depth == 16:
        return b"\x00" + b"".join(struct.pack(">H", s) for s in samples)
    if bit_depth == 8:
        return b"\x00" + bytes(samples)
    per_byte = 8 // bit_depth
    out = bytearray()
    for i in range(0, len(samples), per_byte):
        byte = 0
        group = samples[i:i + per_byte]
        for k, s in enumerate(group):
            byte |= s << (8 - bit_depth * (k + 1))
        out.append(byte)
    return b"\x00" + bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def encode_png(samples, width, height, channels, bit_depth, color_type, palette=None, trns=None, interlace=False):
    """`samples`: rows of per-pixel sample lists (palette indices for color type 3)."""
    raw = bytearray()
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            for y in range(y0, height, dy):
                row = [v for x in range(x0, width, dx) for v in samples[y][x]]
                if row:
                    raw += pack_row(row, bit_depth)
    else:
        for y in range(height):
            raw += pack_row([v for px in samples[y] for v in px], bit_depth)
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        png += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    png += chunk(b"IEND", b"")
    return png


def png_cases():
    w, h = 7, 5  # odd sizes exercise partial bytes and every Adam7 pass
    cases = []

    def value(x, y, c, maximum):
        return (x * 37 + y * 91 + c * 53) % (maximum + 1)

    for bit_depth in (1, 2, 4, 8, 16):
        m = (1 << bit_depth) - 1
        rows = [[[value(x, y, 0, m)] for x in range(w)] for y in range(h)]
        expected_depth = 16 if bit_depth == 16 else 8
        # Low bit depths expand by bit replication (what libpng does): v * 255 / m exactly.
        scale = 1 if bit_depth >= 8 else 255 // m
        cases.append((f"gray{bit_depth}", encode_png(rows, w, h, 1, bit_depth, 0),
                      1, expected_depth, [[px[0] * scale] for r in rows for px in r]))
    for bit_depth in (8, 16):
        m = (1 << bit_depth) - 1
        for channels, color_type, name in ((2, 4, "grayalpha"), (3, 2, "rgb"), (4, 6, "rgba")):
            rows = [[[value(x, y, c, m) for c in range(channels)] for x in range(w)] for y in range(h)]
            cases.append((f"{name}{bit_depth}", encode_png(rows, w, h, channels, bit_depth, color_type),
                          channels, bit_depth, [px for r in rows for px in r]))
    # Palette (4-bit indices) without and with transparency; tRNS shorter than the palette.
    palette = [(value(i, 0, 0, 255), value(i, 1, 1, 255), value(i, 2, 2, 255)) for i in range(12)]
    indices = [[[value(x, y, 0, 11)] for x in range(w)] for y in range(h)]
    cases.append(("palette4", encode_png(indices, w, h, 1, 4, 3, palette=palette), 3, 8,
                  [list(palette[px[0]]) for r in indices for px in r]))
    alphas = bytes([0, 64, 128, 200, 255, 17])
    cases.append(("palette4_trns", encode_png(indices, w, h, 1, 4, 3, palette=palette, trns=alphas), 4, 8,
                  [list(palette[px[0]]) + [alphas[px[0]] if px[0] < len(alphas) else 255] for r in indices for px in r]))
    # tRNS on gray and RGB: one colour becomes transparent.
    gray_rows = [[[value(x, y, 0, 255) // 64 * 64] for x in range(w)] for y in range(h)]
    cases.append(("gray8_trns", encode_png(gray_rows, w, h, 1, 8, 0, trns=struct.pack(">H", 64)), 2, 8,
                  [[px[0], 0 if px[0] == 64 else 255] for r in gray_rows for px in r]))
    rgb_rows = [[[value(x, y, c, 255) // 128 * 128 for c in range(3)] for x in range(w)] for y in range(h)]
    key = rgb_rows[0][0]
    cases.append(("rgb8_trns", encode_png(rgb_rows, w, h, 3, 8, 2, trns=struct.pack(">HHH", *key)), 4, 8,
                  [px + [0 if px == key else 255] for r in rgb_rows for px in r]))
    # Interlaced RGBA 8 and gray 2-bit.
    rows = [[[value(x, y, c, 255) for c in range(4)] for x in range(w)] for y in range(h)]
    cases.append(("rgba8_interlaced", encode_png(rows, w, h, 4, 8, 6, interlace=True), 4, 8,
                  [px for r in rows for px in r]))
    rows = [[[value(x, y, 0, 3)] for x in range(w)] for y in range(h)]
    cases.append(("gray2_interlaced", encode_png(rows, w, h, 1, 2, 0, interlace=True), 1, 8,
                  [[px[0] * 85] for r in rows for px in r]))
    return w, h, cases


def check_with_pillow(path, channels, bit_depth, pixels):
    """Pillow must agree with the expected samples where its modes can represent them."""
    image = Image.open(path)
    if bit_depth == 16 or image.mode == "I":
        return  # Pillow's 16-bit modes do not round-trip all layouts
    if image.mode == "1":
        image = image.convert("L")
    if image.mode == "P":
        image = image.convert("RGBA" if channels == 4 else "RGB")
    if "transparency" in image.info and image.mode in ("L", "RGB"):
        image = image.convert("LA" if image.mode == "L" else "RGBA")
    data = np.asarray(image).reshape(-1, channels)
    assert data.tolist() == pixels, f"Pillow disagrees on {path}"


def jpeg_cases(out):
    assets = os.environ.get("BACKDROP_ASSETS", os.path.expanduser("~/.cache/backdrop/assets"))
    photo = Image.open(os.path.join(assets, "photos", "astronaut.png")).convert("RGB")
    crop = photo.crop((180, 60, 180 + 48, 60 + 40))  # the face: detail, skin and hair tones
    cases = {}
    for name, image, options in (
        ("baseline", crop, dict(quality=90)),
        ("progressive", crop, dict(quality=85, progressive=True)),
        ("gray", crop.convert("L"), dict(quality=90)),
    ):
        path = os.path.join(out, f"astronaut_{name}.jpg")
        image.save(path, **options)
        decoded = np.asarray(Image.open(path))
        cases[name] = {"file": os.path.basename(path), "width": decoded.shape[1], "height": decoded.shape[0],
                       "channels": 1 if decoded.ndim == 2 else decoded.shape[2],
                       "pixels": decoded.reshape(-1).tolist()}
    # Full-range BT.601 YCbCr of the RGB crop (Pillow's JPEG conversion) for the Y4M converter.
    ycbcr = np.asarray(crop.convert("YCbCr"))
    rgb = np.asarray(crop)
    cases["ycbcr"] = {"width": crop.width, "height": crop.height, "rgb": rgb.reshape(-1).tolist(),
                      "ycbcr": ycbcr.reshape(-1).tolist()}
    return cases


def npy_cases(out):
    rows = [[f"17DRP5sb8fy/matterport_skybox_images/{p}_skybox{i}_sami.jpg" for i in range(6)]
            for p in ("0f37bd0737e349de9d536263a4bdd60d", "10c252c90fa24ef3b698c6f54d984c5c")]
    expected = {}

    def save(name, array, version=None, **kwargs):
        path = os.path.join(out, f"{name}.npy")
        with open(path, "wb") as f:
            np.lib.format.write_array(f, array, version=version, allow_pickle=kwargs.get("allow_pickle", False))
        return path

    save("split_v1", np.array(rows), (1, 0))
    save("split_v2", np.array(rows), (2, 0))
    unicode_rows = np.array([["café", "日本語", "🙂 emoji"], ["", "a", "ß"]])
    save("unicode_v3", unicode_rows, (3, 0))
    expected["split"] = {"shape": [2, 6], "values": [s for r in rows for s in r]}
    expected["unicode"] = {"shape": [2, 3], "values": unicode_rows.reshape(-1).tolist()}
    numeric = {
        "f4": np.arange(6, dtype="<f4").reshape(2, 3) / 4,
        "f8_fortran": np.asfortranarray(np.arange(12, dtype="<f8").reshape(3, 4) * 1.5 - 3),
        "i4_big": np.array([[1, -2], [300000, -4]], dtype=">i4"),
        "i8": np.array([-(2 ** 40), 7, 2 ** 33], dtype="<i8"),
        "u1": np.array([[0, 255, 7]], dtype="|u1"),
        "b1": np.array([True, False, True]),
        "f2": np.array([0.5, -1.25, 1000], dtype="<f2"),
        "scalar": np.array(3.25, dtype="<f8"),
    }
    for name, array in numeric.items():
        save(f"numeric_{name}", array)
        expected[f"numeric_{name}"] = {"shape": list(array.shape), "values": np.ravel(array, order="C").tolist()}
    bytes_array = np.array([b"abc", b"de"], dtype="|S4")
    save("bytes_s4", bytes_array)
    expected["bytes_s4"] = {"shape": [2], "values": ["abc", "de"]}
    fortran_strings = np.asfortranarray(np.array([["a", "bb", "ccc"], ["dd", "e", "f"]]))
    save("strings_fortran", fortran_strings)
    expected["strings_fortran"] = {"shape": [2, 3], "values": ["a", "bb", "ccc", "dd", "e", "f"]}
    save("object", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    data = open(os.path.join(out, "split_v1.npy"), "rb").read()
    open(os.path.join(out, "truncated.npy"), "wb").write(data[:len(data) - 100])
    return expected


def check_npy(path, expected_path):
    """Loads a Swift-written .npy with numpy and compares it with the expected JSON."""
    expected = json.load(open(expected_path))
    array = np.load(path, allow_pickle=False)
    assert list(array.shape) == expected["shape"], (array.shape, expected["shape"])
    assert str(array.dtype) == expected["dtype"], (str(array.dtype), expected["dtype"])
    values = array.reshape(-1).tolist()
    assert values == expected["values"], (values[:5], expected["values"][:5])
    print("ok", path, array.dtype, array.shape)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--check-npy":
        check_npy(sys.argv[2], sys.argv[3])
        return
    os.makedirs(OUT, exist_ok=True)
    width, height, cases = png_cases()
    png_expected = {}
    for name, data, channels, bit_depth, pixels in cases:
        path = os.path.join(OUT, f"{name}.png")
        open(path, "wb").write(data)
        check_with_pillow(path, channels, bit_depth, pixels)
        png_expected[name] = {"width": width, "height": height, "channels": channels, "bitDepth": bit_depth,
                              "pixels": [v for px in pixels for v in px]}
    jpegs = jpeg_cases(OUT)
    npy = npy_cases(OUT)
    json.dump({"png": png_expected, "jpeg": jpegs, "npy": npy}, open(os.path.join(OUT, "expected.json"), "w"),
              separators=(",", ":"))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files ({total / 1024:.0f} kB) to {OUT}")


if __name__ == "__main__":
    main()
