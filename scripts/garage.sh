#!/usr/bin/env bash
# A throwaway Garage (S3-compatible object store) for the tests: one node, replication factor 1, listening on
# 127.0.0.1 only, on free ports, with its metadata (SQLite) and data in a directory of its own; a layout
# applied, one access key and one bucket made with the garage CLI.
#
#   scripts/garage.sh start DIR   starts it and prints the BERTH_TEST_S3_* variables (`export NAME=value`
#                                 lines, to `eval`) that the S3 tests read
#   scripts/garage.sh stop DIR    stops that server (its files are not worth keeping)
#
# DIR must exist and be empty. `scripts/test` calls both (stop from an exit trap); a developer can too:
#   dir=$(mktemp -d) && eval "$(scripts/garage.sh start "$dir")"
#   ... cargo nextest run -p berth-blobs s3 ...; scripts/garage.sh stop "$dir"; rm -rf "$dir"
#
# The binary: `garage` 2.5.0 from ~/.cache/berth/garage-2.5.0 (or $BERTH_GARAGE_BIN), built there with
# `cargo install` when missing. Garage has no Debian package and nothing but crates.io is reachable, so the
# build is the only way; it takes 25-45 minutes on two cores, once per machine (the cache survives runs
# where the machine is kept).
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

[ "$#" -eq 2 ] || usage
cmd=$1
dir=$2

version=2.5.0
root="${HOME}/.cache/berth/garage-${version}"
bin="${BERTH_GARAGE_BIN:-$root/bin/garage}"

ensure_binary() {
    if [ -x "$bin" ]; then
        return 0
    fi
    echo "scripts/garage.sh: no garage binary at $bin; building garage $version with cargo install" >&2
    echo "scripts/garage.sh: (25-45 minutes on two cores, once per machine; later runs reuse $root)" >&2
    cargo install garage --version "$version" --locked --root "$root" >"${TMPDIR:-/tmp}/garage-install.log" 2>&1 || {
        tail -n 40 "${TMPDIR:-/tmp}/garage-install.log" >&2
        echo "scripts/garage.sh: cargo install garage failed" >&2
        exit 1
    }
    bin="$root/bin/garage"
}

# A port nobody listens on right now (another process may still take it: start retries).
free_port() {
    local port
    while :; do
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
}

hex() {
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

garage() {
    "$bin" -c "$dir/garage.toml" "$@"
}

write_config() {
    local rpc_port=$1 s3_port=$2
    cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
# The data dies with the test run: no fsync, as with the throwaway PostgreSQL.
metadata_fsync = false
data_fsync = false
replication_factor = 1

rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
EOF
    chmod 600 "$dir/garage.toml"
}

# Waits until the daemon answers the CLI over RPC (up to 30 s).
wait_ready() {
    local i
    for i in $(seq 1 60); do
        if ! kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
            return 1
        fi
        if garage status >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

start() {
    ensure_binary
    mkdir -p "$dir/meta" "$dir/data"
    local tries=0 rpc_port s3_port
    while :; do
        rpc_port=$(free_port)
        s3_port=$(free_port)
        [ "$rpc_port" != "$s3_port" ] || continue
        write_config "$rpc_port" "$s3_port"
        RUST_LOG=warn setsid "$bin" -c "$dir/garage.toml" server >"$dir/server.log" 2>&1 </dev/null &
        echo $! >"$dir/garage.pid"
        if wait_ready; then
            break
        fi
        stop
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            echo "scripts/garage.sh: the server did not start:" >&2
            tail -n 20 "$dir/server.log" >&2
            exit 1
        fi
    done

    {
        local node
        node=$(garage node id -q | cut -d@ -f1)
        garage layout assign -z local -c 1G "$node"
        garage layout apply --version 1
        # Key ids are "GK" and 24 hex digits, secrets 64 hex digits.
        key_id="GK$(hex 12)"
        secret=$(hex 32)
        garage key import --yes -n berth-test "$key_id" "$secret"
        garage bucket create berth-test
        garage bucket allow --read --write --owner berth-test --key berth-test
    } >"$dir/setup.log" 2>&1 || {
        cat "$dir/setup.log" >&2
        stop
        exit 1
    }

    echo "export BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port"
    echo "export BERTH_TEST_S3_REGION=garage"
    echo "export BERTH_TEST_S3_ACCESS_KEY=$key_id"
    echo "export BERTH_TEST_S3_SECRET_KEY=$secret"
    echo "export BERTH_TEST_S3_BUCKET=berth-test"
}

stop() {
    local pid
    [ -f "$dir/garage.pid" ] || return 0
    pid=$(cat "$dir/garage.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/garage.pid"
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
