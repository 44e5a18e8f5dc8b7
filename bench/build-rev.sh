#!/usr/bin/env bash
# Builds berth (release) at a git revision, in a temporary worktree, and prints the binary's path: the
# other side of a regression comparison, e.g.
#   bench/run.sh --baseline "$(bench/build-rev.sh main~3)"
# Binaries are kept in target/bench-builds/<commit>/berth; the build directory is shared between
# revisions (target/bench-rev), so each build is incremental.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rev="${1:?usage: bench/build-rev.sh REVISION}"
commit="$(git -C "$repo" rev-parse --verify "$rev^{commit}")"
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
out="$target_dir/bench-builds/$commit/berth"
if [ ! -x "$out" ]; then
    tree="$(mktemp -d "${TMPDIR:-/tmp}/berth-rev-XXXXXX")"
    trap 'git -C "$repo" worktree remove --force "$tree" >/dev/null 2>&1 || true; rm -rf "$tree"' EXIT
    git -C "$repo" worktree add --detach "$tree" "$commit" >&2
    cargo build --release --locked -p berth --manifest-path "$tree/Cargo.toml" --target-dir "$target_dir/bench-rev" >&2
    mkdir -p "$(dirname "$out")"
    cp "$target_dir/bench-rev/release/berth" "$out"
fi
echo "$out"
