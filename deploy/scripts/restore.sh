#!/usr/bin/env bash
# Restore a backup made by backup.sh into an empty storage.
#
#   restore.sh --from BASE --storage DST [--backup STAMP|latest] [--arrwdb PATH]
#
# BASE: the backup.sh destination (a directory or s3://bucket/prefix). --backup picks a
#   completed backup by its timestamp (default: the newest completed one); `--list`
#   prints the completed backups and exits.
# DST: the storage to fill (as `arrwdb serve --storage`). It must not hold any of the
#   libraries yet (arrwdb refuses to mix two histories). Stop the writer first, restore,
#   then start the writer on DST: it claims every library with a new epoch.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

from=""
storage=""
backup="latest"
list=0
arrwdb="${ARRWDB_BIN:-arrwdb}"
while [ $# -gt 0 ]; do
    case "$1" in
        --from) from="${2:?--from needs a value}"; shift 2 ;;
        --storage) storage="${2:?--storage needs a value}"; shift 2 ;;
        --backup) backup="${2:?--backup needs a value}"; shift 2 ;;
        --arrwdb) arrwdb="${2:?--arrwdb needs a value}"; shift 2 ;;
        --list) list=1; shift ;;
        -h|--help) usage ;;
        *) echo "restore.sh: unknown argument $1" >&2; usage ;;
    esac
done
[ -n "$from" ] || usage
from="${from%/}"

# shellcheck source=SCRIPTDIR/backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"

mapfile -t completed < <(list_complete "$from")
if [ "$list" -eq 1 ]; then
    printf '%s\n' "${completed[@]}"
    exit 0
fi
[ -n "$storage" ] || usage
if [ ${#completed[@]} -eq 0 ]; then
    echo "restore.sh: no completed backup in $from" >&2
    exit 1
fi
if [ "$backup" = "latest" ]; then
    backup="${completed[${#completed[@]}-1]}"
elif ! printf '%s\n' "${completed[@]}" | grep -qxF -- "$backup"; then
    echo "restore.sh: $from/$backup is not a completed backup (see --list)" >&2
    exit 1
fi
echo "restore.sh: $from/$backup -> $storage" >&2
"$arrwdb" restore --from "$from/$backup" --storage "$storage"
