#!/usr/bin/env bash
# The benchmark command: berth beside registry:2 and the machine's limits, in one run (bench/README.md).
# Installs what it drives when missing (Debian: docker-registry, nginx, wrk, skopeo, openssl, curl,
# python3), builds berth in release mode unless --berth names a binary, then hands over to the Python
# driver, which starts every server on 127.0.0.1, stops them all and removes its temporary files at the end.
#   bench/run.sh [--quick] [--reps N] [--baseline OTHER_BERTH_BINARY] [--berth BINARY] [--out DIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

as_root=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
fi

# command:package (nginx-light is enough: static files with sendfile).
missing=()
for pair in docker-registry:docker-registry nginx:nginx-light wrk:wrk skopeo:skopeo openssl:openssl \
    curl:curl python3:python3; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

# --berth BINARY skips the build (e.g. to measure a build of another revision: bench/build-rev.sh).
have_berth=0
for arg in "$@"; do
    [ "$arg" = "--berth" ] && have_berth=1
done
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
berth_args=()
if [ "$have_berth" -eq 0 ]; then
    echo "bench: building berth (release)" >&2
    cargo build --release --locked -p berth >&2
    berth_args=(--berth "$target_dir/release/berth")
fi
# The HEAD-capable load generator: a cargo project of its own (bench/loadgen), outside the workspace.
echo "bench: building bench-loadgen (release)" >&2
cargo build --release --locked --manifest-path bench/loadgen/Cargo.toml --target-dir "$target_dir/bench-loadgen" >&2

exec python3 "$repo/bench/bench.py" --repo "$repo" --loadgen "$target_dir/bench-loadgen/release/bench-loadgen" \
    "${berth_args[@]}" "$@"
