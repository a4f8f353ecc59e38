#!/usr/bin/env bash
# terraform validate on a copy of terraform/*.tf: `terraform init` writes .terraform/ and a lock
# file, which do not belong in the working tree. Where the providers cannot be installed (no
# registry, and no plugin mirror holding them) it says so and succeeds: `terraform fmt -check`
# and tests/test_terraform.py still check the files.
#
# TERRAFORM: the binary (default: terraform on PATH). TF_PLUGIN_DIR: a provider mirror to
# install from instead of the registry (as on machines without network access).
set -euo pipefail

terraform="${TERRAFORM:-terraform}"
if ! command -v "$terraform" >/dev/null 2>&1; then
    echo "terraform validate: skipped, no terraform binary (set TERRAFORM)"
    exit 0
fi

source_dir="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$source_dir"/*.tf "$work"/

init_args=(-backend=false -input=false -no-color)
if [ -n "${TF_PLUGIN_DIR:-}" ]; then
    init_args+=("-plugin-dir=$TF_PLUGIN_DIR")
fi
if ! output="$("$terraform" -chdir="$work" init "${init_args[@]}" 2>&1)"; then
    # Only unreachable providers are skipped; a constraint nothing matches is an error.
    if grep -q "could not connect to registry\|not found in any of the search locations" <<<"$output"; then
        missing="$(grep -A1 "Could not retrieve" <<<"$output" |
            grep -o "hashicorp/[a-z0-9-]*" | sort -u | paste -sd " ")"
        echo "terraform validate: skipped, cannot install provider(s) ${missing:-?} here" \
            "(no registry access${TF_PLUGIN_DIR:+, and not in $TF_PLUGIN_DIR})"
        exit 0
    fi
    echo "$output" >&2
    exit 1
fi
"$terraform" -chdir="$work" validate -no-color
