#!/usr/bin/env bash
# terraform validate on a copy of terraform/*.tf: `terraform init` writes .terraform/ and a lock
# file, which do not belong in the working tree. Where terraform or the providers cannot be had
# (no registry, and no plugin mirror holding them) it prints a WARNING banner saying what was
# not validated, and succeeds: `terraform fmt -check` and tests/test_terraform.py still check
# the files, but nothing has checked them against the providers' schemas. The provider
# versions last validated, and how, are in terraform/README.md (Checks).
#
# TERRAFORM: the binary (default: terraform on PATH). TF_PLUGIN_DIR: a provider mirror to
# install from instead of the registry (as on machines without network access).
set -euo pipefail

# The banner of a skipped validation, on stderr; $1 says why.
not_validated() {
    local rule="########################################################################"
    {
        echo "$rule"
        echo "# WARNING: terraform validate did NOT run: $1."
        echo "# terraform/ was NOT checked against the providers' schemas here: an attribute"
        echo "# the pinned providers do not know would only show at plan or apply."
        echo "# Validate where the registry or a provider mirror (TF_PLUGIN_DIR) is reachable,"
        echo "# and record the versions in terraform/README.md (Checks)."
        echo "$rule"
    } >&2
    echo "terraform validate: skipped ($1)"
}

terraform="${TERRAFORM:-terraform}"
if ! command -v "$terraform" >/dev/null 2>&1; then
    not_validated "no terraform binary (set TERRAFORM)"
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
        not_validated "cannot install provider(s) ${missing:-?} here (no registry access${TF_PLUGIN_DIR:+, and not in $TF_PLUGIN_DIR})"
        exit 0
    fi
    echo "$output" >&2
    exit 1
fi
"$terraform" -chdir="$work" validate -no-color
