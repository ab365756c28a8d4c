# shellcheck shell=bash
# Helpers shared by backup.sh and restore.sh: list, mark and delete backups under a base
# that is a local directory or s3://bucket/prefix (through the aws CLI).

is_s3() {
    case "$1" in s3://*) return 0 ;; *) return 1 ;; esac
}

need_aws() {
    if ! command -v aws >/dev/null 2>&1; then
        echo "backup: listing or deleting backups on $1 needs the aws CLI" >&2
        exit 1
    fi
}

local_dir() {
    local base="${1#file://}"
    printf '%s' "$base"
}

# Completed backup names (timestamps), oldest first.
list_complete() {
    local base="$1"
    if is_s3 "$base"; then
        need_aws "$base"
        aws s3 ls "$base/" | awk '{print $NF}' | sed -n 's/\.complete$//p' | sort
    else
        local dir
        dir="$(local_dir "$base")"
        [ -d "$dir" ] || return 0
        find "$dir" -mindepth 1 -maxdepth 1 -type f -name '*.complete' -printf '%f\n' \
            | sed 's/\.complete$//' | sort
    fi
}

# Backup directories without a .complete marker.
list_partial() {
    local base="$1" name
    local -a complete
    mapfile -t complete < <(list_complete "$base")
    if is_s3 "$base"; then
        aws s3 ls "$base/" | awk '$1 == "PRE" {print $2}' | sed 's:/$::'
    else
        local dir
        dir="$(local_dir "$base")"
        [ -d "$dir" ] || return 0
        find "$dir" -mindepth 1 -maxdepth 1 -type d -printf '%f\n'
    fi | sort | while read -r name; do
        if ! printf '%s\n' "${complete[@]}" | grep -qxF -- "$name"; then
            printf '%s\n' "$name"
        fi
    done
}

backup_exists() {
    local base="$1" name="$2"
    if is_s3 "$base"; then
        command -v aws >/dev/null 2>&1 || return 1
        aws s3 ls "$base/$name/" >/dev/null 2>&1
    else
        [ -e "$(local_dir "$base")/$name" ]
    fi
}

mark_complete() {
    local base="$1" name="$2"
    if is_s3 "$base"; then
        need_aws "$base"
        printf '%s\n' "$name" | aws s3 cp - "$base/$name.complete" >/dev/null
    else
        printf '%s\n' "$name" >"$(local_dir "$base")/$name.complete"
    fi
}

delete_backup() {
    local base="$1" name="$2"
    if is_s3 "$base"; then
        need_aws "$base"
        aws s3 rm --recursive --only-show-errors "$base/$name/"
        aws s3 rm --only-show-errors "$base/$name.complete" || true
    else
        local dir
        dir="$(local_dir "$base")"
        rm -rf -- "${dir:?}/$name" "${dir:?}/$name.complete"
    fi
}
