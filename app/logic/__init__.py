"""The app's logic as plain functions: inputs in, data out. The Streamlit panels only draw what
these return, and the tests and `benchmarks/bench_app.py` call the same functions.

Every embedding goes through the index's `Embedder` (`gair.embed`), so a clicked point gets
exactly the embedding the index stored for the same coordinates.

One module per job; this package re-exports their public names (`from app import logic`):

- `inputs`: coordinate checks and parsing, `clamp_k`, uploaded images;
- `embeddings`: point / location / image embeddings and the neighbourhood grid;
- `streetviews`: gallery images (LRU-cached) and the top-k street views of an embedding;
- `labels`: ground truth (demo indexes only) and head predictions at a point;
- `novelty`: whether a photo is like anything in the gallery (out-of-distribution warning);
- `places`: top-k places and the similarity heatmap over the cells the map draws;
- `queries`: `click_result`, `image_search`, `compare_points`;
- `provisional`: a click answered from the nearest cell's stored vectors while the model loads;
- `detail`: overlays redrawn for the map's view when zoomed in on a fine index;
- `layers`: the map's static overlays (predictions, truth);
- `export`: the result table, CSV and GeoJSON;
- `runtime`: the shared thread pool and stopwatch.
"""

from app.logic.embeddings import (
    NEIGHBOURHOOD_N,
    embed_image,
    embed_locations,
    embed_points,
    neighbourhood_grid,
    prepare_photo,
)
from app.logic.export import results_table, to_csv, to_geojson
from app.logic.inputs import (
    K_DEFAULT,
    K_MAX,
    check_point,
    clamp_k,
    decode_upload,
    parse_coordinates,
)
from app.logic.labels import (
    caveat_at,
    has_labels,
    head_scores,
    mark_caveat,
    predictions_for,
    truth_at,
)
from app.logic.layers import (
    IGBP_COLORS,
    KOPPEN_COLORS,
    LAYER_SIMILARITY,
    layer_overlay,
    map_layers,
)
from app.logic.novelty import gallery_floor
from app.logic.novelty import message as novelty_message
from app.logic.places import (
    PLACE_COLUMNS,
    SIMILARITY_FLOOR_QUANTILE,
    similarity_overlay,
    top_places,
)
from app.logic.provisional import provisional_click
from app.logic.queries import click_result, compare_points, image_search
from app.logic.streetviews import (
    THUMB_CACHE_SIZE,
    THUMBNAILS_MAX,
    has_gallery,
    is_rendered,
    streetview_image,
)

__all__ = [
    "IGBP_COLORS",
    "K_DEFAULT",
    "K_MAX",
    "KOPPEN_COLORS",
    "LAYER_SIMILARITY",
    "NEIGHBOURHOOD_N",
    "PLACE_COLUMNS",
    "SIMILARITY_FLOOR_QUANTILE",
    "THUMB_CACHE_SIZE",
    "THUMBNAILS_MAX",
    "caveat_at",
    "check_point",
    "clamp_k",
    "click_result",
    "compare_points",
    "decode_upload",
    "embed_image",
    "embed_locations",
    "embed_points",
    "gallery_floor",
    "has_gallery",
    "has_labels",
    "head_scores",
    "image_search",
    "is_rendered",
    "layer_overlay",
    "mark_caveat",
    "map_layers",
    "neighbourhood_grid",
    "novelty_message",
    "parse_coordinates",
    "predictions_for",
    "prepare_photo",
    "provisional_click",
    "results_table",
    "similarity_overlay",
    "streetview_image",
    "to_csv",
    "to_geojson",
    "top_places",
    "truth_at",
]
