#!/usr/bin/env bash
# Back up every library of an arrwDB storage into a new, timestamped backup, then keep
# only the newest N backups.
#
#   backup.sh --storage SRC --dest BASE [--keep N] [--arrwdb PATH]
#
# SRC: the live storage (as `arrwdb serve --storage`); it may keep taking writes.
# BASE: a directory or s3://bucket/prefix. Each run writes BASE/<UTC timestamp>/ with
#   `arrwdb backup` (a consistent snapshot + WAL cut per library, verified, manifest
#   last), then BASE/<timestamp>.complete. Only completed backups count for retention
#   and for restore.sh; an interrupted run leaves no .complete and is pruned later.
# --keep N: delete completed backups beyond the newest N (default 7; 0 keeps all), and
#   leftovers of interrupted runs older than the newest completed one. On s3:// this uses
#   the aws CLI (AWS_ENDPOINT_URL for S3-compatible stores).
# S3 credentials come from AWS_* variables, as for `arrwdb serve`.
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

storage=""
dest=""
keep=7
arrwdb="${ARRWDB_BIN:-arrwdb}"
while [ $# -gt 0 ]; do
    case "$1" in
        --storage) storage="${2:?--storage needs a value}"; shift 2 ;;
        --dest) dest="${2:?--dest needs a value}"; shift 2 ;;
        --keep) keep="${2:?--keep needs a value}"; shift 2 ;;
        --arrwdb) arrwdb="${2:?--arrwdb needs a value}"; shift 2 ;;
        -h|--help) usage ;;
        *) echo "backup.sh: unknown argument $1" >&2; usage ;;
    esac
done
[ -n "$storage" ] && [ -n "$dest" ] || usage
case "$keep" in ''|*[!0-9]*) echo "backup.sh: --keep must be a number" >&2; exit 2 ;; esac
dest="${dest%/}"

# shellcheck source=SCRIPTDIR/backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
if backup_exists "$dest" "$stamp"; then
    echo "backup.sh: $dest/$stamp already exists; try again in a second" >&2
    exit 1
fi
echo "backup.sh: $storage -> $dest/$stamp" >&2
"$arrwdb" backup --storage "$storage" --to "$dest/$stamp" >&2
mark_complete "$dest" "$stamp"
echo "backup.sh: completed $dest/$stamp" >&2

if [ "$keep" -gt 0 ]; then
    mapfile -t completed < <(list_complete "$dest")
    count=${#completed[@]}
    if [ "$count" -gt "$keep" ]; then
        for old in "${completed[@]:0:count-keep}"; do
            echo "backup.sh: retention ($keep): deleting $dest/$old" >&2
            delete_backup "$dest" "$old"
        done
    fi
    # Interrupted runs: directories without a .complete, older than the newest backup.
    for partial in $(list_partial "$dest"); do
        if [[ "$partial" < "$stamp" ]]; then
            echo "backup.sh: deleting interrupted backup $dest/$partial" >&2
            delete_backup "$dest" "$partial"
        fi
    done
fi
echo "$dest/$stamp"
