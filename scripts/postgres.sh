#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: `initdb` + `pg_ctl` into a directory of its own, listening on
# 127.0.0.1 only (no Unix socket), on a free port, with a random password (SCRAM, as production would use),
# and TLS offered with a certificate for `localhost` signed by a CA made for the run.
#
#   scripts/postgres.sh start DIR   prints the URL of a new server whose files all live in DIR
#   scripts/postgres.sh stop DIR    stops that server (immediately: nothing in it is worth keeping)
#
# DIR/tls/ca.crt is the CA of the server's certificate (for sslmode verify-ca/verify-full), and
# DIR/tls/other-ca.crt an unrelated CA (a certificate check must fail against it).
# DIR must exist and be empty. `scripts/test` calls both (stop from an exit trap); a developer can too:
#   dir=$(mktemp -d) && export BERTH_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$dir")
#   ... cargo nextest run -p berth-metadata ...; scripts/postgres.sh stop "$dir"; rm -rf "$dir"
#
# Installs Debian's `postgresql` package when no server binaries are found. initdb refuses to run as root, so
# as root the server runs as the `postgres` user that package creates. Durability is switched off (fsync,
# full_page_writes, synchronous_commit): the cluster dies with the test run, and it is much faster so.
set -euo pipefail

usage() {
    echo "usage: $0 start|stop DIR" >&2
    exit 2
}

[ "$#" -eq 2 ] || usage
cmd=$1
dir=$2

# The newest server binaries Debian's packages installed (they are not on PATH).
find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# Runs a server binary as the user that owns the cluster.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A CA, a server certificate it signs (for the name localhost only, so a check of the name against
# 127.0.0.1 fails while a check of the chain passes), and an unrelated CA. P-256 keys: quick to make.
make_certificates() {
    local tls=$1
    mkdir "$tls"
    (
        cd "$tls"
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
        openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=berth test CA" -keyout ca.key -out ca.crt \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req -x509 "${ec[@]}" -days 2 -subj "/CN=some other CA" -keyout other-ca.key \
            -out other-ca.crt -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign"
        openssl req "${ec[@]}" -subj "/CN=localhost" -keyout server.key -out server.csr
        printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
            -extfile server.ext -out server.crt
        chmod 600 server.key
    ) >"$dir/openssl.log" 2>&1 || {
        cat "$dir/openssl.log" >&2
        exit 1
    }
}

start() {
    if ! bindir=$(find_bindir); then
        echo "scripts/postgres.sh: installing postgresql" >&2
        local as_root=()
        [ "$(id -u)" -ne 0 ] && as_root=(sudo)
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends postgresql >/dev/null
        bindir=$(find_bindir) || {
            echo "scripts/postgres.sh: postgresql installed but no initdb found" >&2
            exit 1
        }
    fi

    # Hex behind a letter: a password that YAML could read as a number (`REGISTRY_DATABASE_PASSWORD`
    # values are YAML) would not survive the trip.
    local password
    password=pw$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$password" >"$dir/password"
    mkdir "$dir/data"
    make_certificates "$dir/tls"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres: "$dir"
    fi
    chmod 700 "$dir"

    # -U berth: the superuser the tests connect as (they create a database per test, and kill connections).
    as_owner "$bindir/initdb" -D "$dir/data" -U berth --pwfile="$dir/password" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
        --locale-provider=icu --icu-locale=en-US --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }

    # A random port; another process may hold it, so try a few.
    local port tries=0
    while :; do
        port=$((20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000))
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o "\
            -c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='' \
            -c fsync=off -c full_page_writes=off -c synchronous_commit=off \
            -c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key \
            -c max_connections=300 -c shared_buffers=64MB" >/dev/null; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            echo "scripts/postgres.sh: the server did not start:" >&2
            tail -n 20 "$dir/server.log" >&2
            exit 1
        fi
    done
    echo "postgres://berth:$password@127.0.0.1:$port/postgres"
}

stop() {
    local bindir
    bindir=$(find_bindir) || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
