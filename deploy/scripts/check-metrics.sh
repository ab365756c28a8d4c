#!/usr/bin/env bash
# Check a live /metrics scrape against the metrics contract (deploy/monitoring/metrics.txt):
# every listed metric family must be exported.
#
#   check-metrics.sh URL [METRICS_TXT]     e.g. check-metrics.sh http://127.0.0.1:7700
#
# A family counts as exported when the scrape has its `# TYPE` line or a sample of it
# (histograms as NAME_bucket / NAME_sum / NAME_count). Exits 1 naming what is missing.
set -euo pipefail

url="${1:?usage: check-metrics.sh URL [METRICS_TXT]}"
contract="${2:-$(dirname "$0")/../monitoring/metrics.txt}"
scrape="$(curl -fsS --max-time 10 "${url%/}/metrics")"

exported="$(
    printf '%s\n' "$scrape" | awk '
        /^# TYPE / { print $3; next }
        /^#/ || NF == 0 { next }
        { name = $1; sub(/\{.*/, "", name); print name
          if (sub(/_(bucket|sum|count)$/, "", name)) print name }
    ' | sort -u
)"

missing=0
while read -r name; do
    case "$name" in ''|'#'*) continue ;; esac
    if ! printf '%s\n' "$exported" | grep -qxF -- "$name"; then
        echo "check-metrics: $name is not exported by $url/metrics" >&2
        missing=$((missing + 1))
    fi
done <"$contract"

total="$(grep -cv '^\(#\|$\)' "$contract")"
if [ "$missing" -gt 0 ]; then
    echo "check-metrics: $missing of $total contract metrics missing" >&2
    exit 1
fi
echo "check-metrics: all $total contract metrics exported by $url/metrics"
