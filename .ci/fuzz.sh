#!/usr/bin/env bash
# Build and run each cargo-fuzz target for a fixed time on the stable toolchain (no nightly:
# `--sanitizer none` needs no -Z flag), and fail on any finding (crash, panic, timeout, OOM).
#
#   bash .ci/fuzz.sh            # 60 s per target
#   FUZZ_SECONDS=600 bash .ci/fuzz.sh
#
# New corpus entries go to a temporary directory; the checked-in seeds (fuzz/corpus/TARGET) are
# only read. A finding of this run is left in fuzz/artifacts/TARGET/ (cleared at the start of
# each target's run) and listed; reproduce it with
#   cd fuzz && cargo fuzz run --sanitizer none TARGET artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${FUZZ_SECONDS:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

cargo fuzz build --sanitizer none
status=0
for target in ops segment; do
    work="$(mktemp -d)"
    rm -rf "artifacts/$target" # findings of earlier runs are not this run's
    echo "== fuzz $target for ${seconds} s"
    log="$(mktemp)"
    if ! cargo fuzz run --sanitizer none "$target" "$work" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=2 -rss_limit_mb=4096 -print_final_stats=1 \
        >"$log" 2>&1; then
        status=1
        # What went wrong, which the dictionary statistics at the end would push out of view.
        grep -E -A12 "panicked|ERROR: libFuzzer|deadly signal|SUMMARY" "$log" | head -n 60 || true
    fi
    grep -v '^"' "$log" | tail -n 25
    # `tail` hides the fuzzer's status from the pipeline: look for what it leaves behind too.
    if compgen -G "artifacts/$target/*" >/dev/null; then
        echo "fuzz $target: findings in fuzz/artifacts/$target:" >&2
        ls -l "artifacts/$target" >&2
        status=1
    fi
    rm -rf "$work" "$log"
done
exit "$status"
