"""Contact sheet of rendered views (docs/img/world_contact_sheet.png): places x headings."""

from __future__ import annotations

import numpy as np

PLACES = {
    "Sahara": (23.5, 11.5),
    "Amazon": (-3.5, -62.0),
    "Greenland": (72.5, -40.0),
    "Paris": (48.8566, 2.3522),
    "Himalaya": (27.8, 86.7),
    "Netherlands": (52.6, 6.3),
    "Tokyo": (35.68, 139.76),
    "Tibet": (32.0, 88.0),
}
HEADINGS = (0.0, 90.0, 180.0, 270.0)


def contact_sheet(world, places=None, headings=HEADINGS, seed: int = 0, size: int = 64,
                  scale: int = 3):  # fmt: skip
    """uint8 image: one row per place (label on the left), one column per heading, with the
    place's RS chip (32 px, RGB) in the last column."""
    from PIL import Image, ImageDraw

    places = places or PLACES
    label_w, gap = 110, 4
    cell = size * scale
    n_cols = len(headings) + 1
    width = label_w + n_cols * (cell + gap)
    height = 24 + len(places) * (cell + gap)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for j, h in enumerate(headings):
        draw.text((label_w + j * (cell + gap) + 4, 6), f"heading {h:g}", fill=(0, 0, 0))
    draw.text((label_w + len(headings) * (cell + gap) + 4, 6), "RS chip (RGB)", fill=(0, 0, 0))
    for i, (name, latlon) in enumerate(places.items()):
        y = 24 + i * (cell + gap)
        lab = {k: v.item() for k, v in world.labels(np.array(latlon)).items()}
        text = (
            f"{name}\n{latlon[0]:.2f}, {latlon[1]:.2f}\nKoppen {'-ABCDE'[lab['koppen']]}"
            f"\nIGBP {lab['landcover']}\n{lab['elevation_m']:.0f} m\npop {lab['population']:.1f}"
        )
        draw.multiline_text((4, y + 4), text, fill=(0, 0, 0))
        views = world.render_views(np.array([latlon] * len(headings)), list(headings), seed, size)
        for j, v in enumerate(views):
            tile = Image.fromarray(v).resize((cell, cell), Image.Resampling.NEAREST)
            sheet.paste(tile, (label_w + j * (cell + gap), y))
        rs, _ = world.chip(np.array(latlon), 32)
        chip = (np.clip(rs[:3].transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
        tile = Image.fromarray(chip).resize((cell, cell), Image.Resampling.NEAREST)
        sheet.paste(tile, (label_w + len(headings) * (cell + gap), y))
    return np.asarray(sheet)
