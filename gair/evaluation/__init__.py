"""Downstream evaluation: frozen-embedding probes, cross-view retrieval, geolocalization."""
