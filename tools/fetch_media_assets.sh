#!/usr/bin/env bash
# Real media for the tests and the call pipeline, fetched from Debian packages without installing
# them (docs/datasets.md#real-weights-and-media):
#   panoramas  blender-data's CC0 world HDRIs (1024×512 equirectangular OpenEXR, DWAB-compressed),
#              decoded once to 8-bit PNG by tools/exr_to_png.c → $ASSETS/panoramas/<name>.png
#   photos     scikit-image's public-domain astronaut.png (512×512) and camera.png from
#              python3-skimage → $ASSETS/photos/<name>.png
#   videos     opencv-doc's vtest.avi (768×576, 10 fps, 795 frames, static camera, people walking)
#              → $ASSETS/videos/vtest.avi, the camera tracker's real static-camera test
# Each .deb is fetched with `apt-get download` into $CACHE/downloads and checked against the SHA256
# that `apt-cache show` reports for the candidate version. Idempotent: a stamp file per kind.
#
# usage: tools/fetch_media_assets.sh CACHE_DIR {panoramas|photos|videos}
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: fetch_media_assets.sh CACHE_DIR panoramas|photos|videos" >&2
    exit 2
fi
cache=$1
kind=$2
assets="$cache/assets"
downloads="$cache/downloads"
here=$(cd "$(dirname "$0")" && pwd)

# Downloads the candidate .deb of package $1 (if not already there) and prints its path.
fetch_deb() {
    local package=$1 version sha file
    version=$(apt-cache show --no-all-versions "$package" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
    if [ -z "$version" ]; then
        echo "fetch_media_assets: apt knows no package $package; running apt-get update" >&2
        apt-get update -qq >&2 || true
        version=$(apt-cache show --no-all-versions "$package" | awk '/^Version:/ {print $2; exit}')
    fi
    sha=$(apt-cache show --no-all-versions "$package" | awk '/^SHA256:/ {print $2; exit}')
    # apt-get download names the file <package>_<version with ':' escaped>_<arch>.deb.
    file=$(ls "$downloads/${package}_"*.deb 2>/dev/null | head -n1 || true)
    if [ -z "$file" ] || [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sha" ]; then
        rm -f "$downloads/${package}_"*.deb
        mkdir -p "$downloads"
        echo "downloading $package $version" >&2
        (cd "$downloads" && apt-get download -qq "$package=$version" >&2)
        file=$(ls "$downloads/${package}_"*.deb | head -n1)
    fi
    local actual
    actual=$(sha256sum "$file" | cut -d' ' -f1)
    if [ "$actual" != "$sha" ]; then
        echo "fetch_media_assets: $file has sha256 $actual, apt-cache reports $sha" >&2
        rm -f "$file"
        exit 1
    fi
    echo "$file"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case "$kind" in
panoramas)
    deb=$(fetch_deb blender-data)
    world=usr/share/blender/datafiles/studiolights/world
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards "./$world/*.exr" "./$world/license.txt"
    cc -O2 -o "$work/exr_to_png" "$here/exr_to_png.c" -I/usr/include/OpenEXR -I/usr/include/Imath \
        -lOpenEXR-3_1 -lpng -lm
    mkdir -p "$assets/panoramas"
    for exr in "$work/$world"/*.exr; do
        name=$(basename "$exr" .exr)
        "$work/exr_to_png" "$exr" "$work/$name.png" 2>/dev/null
        mv "$work/$name.png" "$assets/panoramas/$name.png"
    done
    cp "$work/$world/license.txt" "$assets/panoramas/LICENSE.txt"
    echo "panoramas: $(ls "$assets/panoramas"/*.png | wc -l) PNGs in $assets/panoramas"
    ;;
photos)
    deb=$(fetch_deb python3-skimage)
    data=usr/lib/python3/dist-packages/skimage/data
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" "./$data/astronaut.png" "./$data/camera.png"
    mkdir -p "$assets/photos"
    cp "$work/$data/astronaut.png" "$work/$data/camera.png" "$assets/photos/"
    echo "photos: astronaut.png, camera.png in $assets/photos"
    ;;
videos)
    deb=$(fetch_deb opencv-doc)
    data=usr/share/doc/opencv-doc/examples/data
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" "./$data/vtest.avi"
    mkdir -p "$assets/videos"
    mv "$work/$data/vtest.avi" "$assets/videos/vtest.avi"
    echo "videos: vtest.avi in $assets/videos"
    ;;
*)
    echo "fetch_media_assets: unknown kind '$kind' (panoramas, photos or videos)" >&2
    exit 2
    ;;
esac
touch "$assets/.$kind-ready"
