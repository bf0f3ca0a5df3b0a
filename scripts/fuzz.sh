#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: runs each coverage-guided fuzz target of shared/fuzz/
# for SECONDS (default 600) on its committed corpus, one after the other.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`, installed here when
# missing). The machine has only stable Rust: RUSTC_BOOTSTRAP=1 lets cargo
# fuzz pass its -Z flags. No sanitizer (-s none): the code under test is safe
# Rust, so a crash is a panic, which libFuzzer catches; debug assertions
# (overflow checks) are on. New inputs that add coverage are written to
# shared/fuzz/corpus/TARGET; after each run the corpus is minimised to the inputs
# that add coverage *edges* (libFuzzer merge with -use_counters=0), a few
# hundred small files for the repository. A crash leaves its input in
# shared/fuzz/artifacts/TARGET and fails the script.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT/shared/fuzz"

SECONDS_EACH=${1:-600}
have cargo-fuzz || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in submission codec_roundtrip intake mask; do
  info "fuzzing $target for ${SECONDS_EACH}s"
  log="$LOG_DIR/fuzz-$target.log"
  rc=0
  cargo fuzz run -s none "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_EACH" -max_len=8192 -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss|Done)|panicked' "$log" || true
  ((rc == 0)) || die "$target crashed: see shared/fuzz/artifacts/$target and $log"
  minimised=$(mktemp -d)
  cargo fuzz run -s none "$target" "$minimised" "corpus/$target" -- \
    -merge=1 -use_counters=0 -use_value_profile=0 -max_len=8192 >>"$log" 2>&1
  rm -rf "corpus/$target"
  mv "$minimised" "corpus/$target"
  info "$target: corpus minimised to $(find "corpus/$target" -type f | wc -l) files"
done
