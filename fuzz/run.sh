#!/usr/bin/env bash
# Build every cargo-fuzz target with nightly and run each for N seconds
# (default 30). Installs nightly and cargo-fuzz when missing. Exits non-zero
# when a target finds a crash (the input is left in fuzz/artifacts/).
# Inputs under regressions/<target>/ (checked in: crashes found before, kept
# after their fix) run first, as part of each target's starting corpus.
#
#   bash fuzz/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo +nightly fuzz build
status=0
for target in $(cargo +nightly fuzz list); do
    echo "fuzz: $target for ${secs}s"
    mkdir -p "corpus/$target"
    regressions=()
    if [ -d "regressions/$target" ]; then
        regressions=("regressions/$target")
    fi
    if ! cargo +nightly fuzz run "$target" "corpus/$target" "${regressions[@]}" -- \
        -max_total_time="$secs" -print_final_stats=1; then
        echo "fuzz: $target FAILED; reproduce with: cargo +nightly fuzz run $target fuzz/artifacts/$target/<crash file>" >&2
        status=1
    fi
done
exit "$status"
