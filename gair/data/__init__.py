"""Real-data ingest: `gair data prepare` turns a Global Streetscapes-style CSV, its street-view
images and Sentinel-2 GeoTIFFs (any CRS) into sharded training triples, and `PreparedTriples`
reads them back as the same sample dicts as `gair.world.WorldTriples`."""

__all__ = ["PreparedTriples", "prepare"]


def __getattr__(name):
    if name == "prepare":
        from gair.data.prepare import prepare

        return prepare
    if name == "PreparedTriples":
        from gair.data.dataset import PreparedTriples

        return PreparedTriples
    raise AttributeError(f"module 'gair.data' has no attribute {name!r}")
