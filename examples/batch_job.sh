#!/usr/bin/env bash
# Pack several image folders, check each result, and fail the job if any image was skipped.
#
#   OUT_ROOT=/data/shards examples/batch_job.sh photos/cats photos/dogs ...
#
# Each FOLDER is packed into OUT_ROOT/<folder name> (replacing an earlier pack there) and
# inspected with --json. Every folder is processed; then the job exits 1, naming each folder
# that had skipped images (unreadable, corrupt, truncated, ...) or failed outright, or 0 when
# all are clean. The JSON is read with python3, as jq may not be installed.
#
# Environment: OUT_ROOT (default ./shards); PACK_ARGS, extra `imgrec pack` options such as
# "--format raw --shards 4"; IMGREC, the command to run (default imgrec); PYTHON (python3).
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: OUT_ROOT=DIR $0 FOLDER..." >&2
    exit 2
fi

OUT_ROOT=${OUT_ROOT:-shards}
PYTHON=${PYTHON:-python3}
read -r -a IMGREC <<<"${IMGREC:-imgrec}"
read -r -a PACK_ARGS <<<"${PACK_ARGS:-}"

# Each takes one JSON object on stdin.
skipped_count() { # from `imgrec pack --json` (the manifest's "skipped" list)
    "$PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)["skipped"]))'
}
skipped_list() {
    "$PYTHON" -c 'import json, sys
for s in json.load(sys.stdin)["skipped"]:
    print("  %s: %s" % (s["path"], s["reason"]))'
}
summary() { # from `imgrec inspect --json`
    "$PYTHON" -c 'import json, sys
d = json.load(sys.stdin)
labels = ", ".join("%s %d" % kv for kv in d["labels"].items())
print("  %d records in %d shard(s); labels: %s" % (d["records"], len(d["shards"]), labels))'
}
folder_name() { # photos/cats/ -> cats; . -> the current folder's name
    "$PYTHON" -c 'import os, sys; print(os.path.basename(os.path.abspath(sys.argv[1])))' "$1"
}

folders=("$@")
names=()
for folder in "${folders[@]}"; do
    names+=("$(folder_name "$folder")")
done
dups=$(printf '%s\n' "${names[@]}" | sort | uniq -d)
if [[ -n $dups ]]; then
    echo "error: more than one folder is named: $dups (their outputs would collide)" >&2
    exit 2
fi

mkdir -p -- "$OUT_ROOT"
failed=()
for i in "${!folders[@]}"; do
    folder=${folders[i]}
    out=$OUT_ROOT/${names[i]}
    echo "== $folder -> $out"

    if ! pack_json=$("${IMGREC[@]}" pack "$folder" "$out" --overwrite --json -q "${PACK_ARGS[@]}"); then
        echo "FAILED: $folder: imgrec pack failed (see the error above)" >&2
        failed+=("$folder")
        continue
    fi
    if ! inspect_json=$("${IMGREC[@]}" inspect "$out" --json); then
        echo "FAILED: $folder: imgrec inspect found problems in $out" >&2
        failed+=("$folder")
        continue
    fi
    summary <<<"$inspect_json"

    skipped=$(skipped_count <<<"$pack_json")
    if [[ $skipped -gt 0 ]]; then
        echo "FAILED: $folder: $skipped image(s) skipped:" >&2
        skipped_list <<<"$pack_json" >&2
        failed+=("$folder")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "batch job FAILED for ${#failed[@]} of ${#folders[@]} folder(s): ${failed[*]}" >&2
    exit 1
fi
echo "all ${#folders[@]} folder(s) packed into $OUT_ROOT, no image skipped"
