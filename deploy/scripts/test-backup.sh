#!/usr/bin/env bash
# End-to-end test of backup.sh / restore.sh with the real server, on local directories:
# write a document, back up twice with --keep 1 (retention leaves one), refuse a
# non-empty target, restore into a fresh directory, serve it and read the document back.
# On the way, the live /metrics is checked against the contract (check-metrics.sh).
#
#   test-backup.sh ARRWDB_BINARY ENGINE_COMPONENT
set -euo pipefail

arrwdb="$(realpath "${1:?usage: test-backup.sh ARRWDB_BINARY ENGINE_COMPONENT}")"
component="$(realpath "${2:?usage: test-backup.sh ARRWDB_BINARY ENGINE_COMPONENT}")"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
server_pid=""

cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf -- "$work"
}
trap cleanup EXIT

fail() {
    echo "test-backup: FAILED: $*" >&2
    exit 1
}

# Starts `arrwdb serve` on a free port over directory $1; sets server_pid and base.
start_server() {
    local log="$work/server-$RANDOM.log"
    ARRWDB_NO_AUTH=true "$arrwdb" serve --addr 127.0.0.1:0 --storage "$1" \
        --component "$component" --no-compile-cache >"$log" 2>&1 &
    server_pid=$!
    local _
    for _ in $(seq 1 300); do
        base="$(sed -n 's/^listening on //p' "$log" | head -n 1)"
        if [ -n "$base" ] && curl -fsS "$base/ready" >/dev/null 2>&1; then return 0; fi
        kill -0 "$server_pid" 2>/dev/null || fail "server exited: $(cat "$log")"
        sleep 0.1
    done
    fail "server not ready after 30 s: $(cat "$log")"
}

stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}

api() {
    curl -fsS -H 'content-type: application/json' "$@"
}

start_server "$work/live"
api -X POST "$base/v1/libraries" -d '{"name":"notes","dimension":3,"metric":"cosine"}' >/dev/null
api -X POST "$base/v1/libraries/notes/documents" \
    -d '{"id":"a","metadata":{"lang":"en"},"chunks":[{"text":"hello","embedding":[1,0,0]}]}' >/dev/null

# The live-scrape check of the metrics contract: every name the dashboards and alert
# rules use must be in a real /metrics scrape.
api -X POST "$base/v1/libraries/notes/search" -d '{"vector":[1,0,0],"k":1}' >/dev/null
"$here/check-metrics.sh" "$base" || fail "the live /metrics does not hold the contract"

# Two backups of the live server (it keeps serving), one second apart; keep 1.
first="$("$here/backup.sh" --arrwdb "$arrwdb" --storage "$work/live" --dest "$work/backups" --keep 1)"
sleep 1.1
api -X POST "$base/v1/libraries/notes/documents" \
    -d '{"id":"b","chunks":[{"text":"again","embedding":[0,1,0]}]}' >/dev/null
second="$("$here/backup.sh" --arrwdb "$arrwdb" --storage "$work/live" --dest "$work/backups" --keep 1)"
stop_server

[ ! -e "$first" ] || fail "retention kept $first"
[ -d "$second" ] || fail "no backup at $second"
listed="$("$here/restore.sh" --from "$work/backups" --list)"
[ "$listed" = "$(basename "$second")" ] || fail "restore.sh --list printed '$listed'"

"$here/restore.sh" --arrwdb "$arrwdb" --from "$work/backups" --storage "$work/restored"
if "$here/restore.sh" --arrwdb "$arrwdb" --from "$work/backups" --storage "$work/restored" 2>/dev/null; then
    fail "restoring into a storage that holds the library succeeded"
fi
if "$here/restore.sh" --arrwdb "$arrwdb" --from "$work/backups" --backup 19700101T000000Z \
    --storage "$work/other" 2>/dev/null; then
    fail "restoring a backup that does not exist succeeded"
fi

start_server "$work/restored"
hits="$(api -X POST "$base/v1/libraries/notes/search" -d '{"vector":[0.1,1,0],"k":5}')"
stop_server
case "$hits" in
    *'"b"'*'"a"'* | *'"a"'*'"b"'*) ;;
    *) fail "restored library does not hold both documents: $hits" ;;
esac
echo "test-backup: backup, retention and restore work ($(basename "$second"))"
