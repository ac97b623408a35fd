#!/usr/bin/env bash
# Install the C library of shmsem into PREFIX (default /usr/local):
#   PREFIX/lib/libshmsem.so, PREFIX/lib/libshmsem.a, PREFIX/include/shmsem.h,
#   PREFIX/lib/pkgconfig/shmsem.pc
# It builds them first (`cargo build --release -p shmsem-ffi`) unless SHMSEM_NO_BUILD is set;
# CARGO_TARGET_DIR, if set, is where it finds them.
#
#   ffi/install.sh "$HOME/.local"
#   PKG_CONFIG_PATH="$HOME/.local/lib/pkgconfig" cc app.c $(pkg-config --cflags --libs shmsem)
set -euo pipefail
prefix="${1:-/usr/local}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac

if [ -z "${SHMSEM_NO_BUILD:-}" ]; then
    (cd "$root" && "${CARGO:-cargo}" build --release -p shmsem-ffi)
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"

for f in libshmsem.so libshmsem.a; do
    [ -f "$target/release/$f" ] || {
        echo "install.sh: $target/release/$f is missing; build it with: cargo build --release -p shmsem-ffi" >&2
        exit 1
    }
done
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$target/release/libshmsem.so" "$prefix/lib/libshmsem.so"
install -m 0644 "$target/release/libshmsem.a" "$prefix/lib/libshmsem.a"
install -m 0644 "$here/include/shmsem.h" "$prefix/include/shmsem.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/shmsem.pc.in" \
    >"$prefix/lib/pkgconfig/shmsem.pc"
echo "installed shmsem $version into $prefix"
