#!/usr/bin/env bash
# Install the browser assets the map app serves itself (app/static/vendor/, git-ignored):
# Leaflet's dist/ from the npm registry (`npm pack`), falling back to Debian's libjs-leaflet.
# With these the map renders with no network at all (see docs/APP.md).
set -euo pipefail
cd "$(dirname "$0")/.."
LEAFLET_VERSION="${LEAFLET_VERSION:-1.9.4}"
DEST=app/static/vendor/leaflet
STAMP="$DEST/.version"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "leaflet@$LEAFLET_VERSION" ] && [ -f "$DEST/leaflet.js" ]; then
    echo "vendor assets up to date: leaflet@$LEAFLET_VERSION in $DEST"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p app/static/vendor

if command -v npm >/dev/null 2>&1 && (cd "$tmp" && npm pack "leaflet@$LEAFLET_VERSION" --silent >/dev/null 2>&1); then
    tar -xzf "$tmp"/leaflet-*.tgz -C "$tmp"
    rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
    cp -r "$tmp/package/dist/." "$DEST.tmp/"
    cp "$tmp/package/LICENSE" "$DEST.tmp/LICENSE"
    echo "leaflet@$LEAFLET_VERSION" > "$DEST.tmp/.version"
elif [ -d /usr/share/javascript/leaflet ] || { [ "$(id -u)" -eq 0 ] && apt-get install -y --no-install-recommends libjs-leaflet >/dev/null; }; then
    # Debian's packaged Leaflet (1.9.x): same dist layout
    rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
    cp -rL /usr/share/javascript/leaflet/. "$DEST.tmp/"
    echo "leaflet@$LEAFLET_VERSION" > "$DEST.tmp/.version"
else
    echo "error: cannot fetch leaflet@$LEAFLET_VERSION (needs npm, or apt-get install libjs-leaflet)" >&2
    exit 1
fi
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "installed leaflet@$LEAFLET_VERSION into $DEST ($(du -sh "$DEST" | cut -f1))"
