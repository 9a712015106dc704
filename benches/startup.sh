#!/usr/bin/env bash
# Startup benchmark: `opsh run` of an empty script, and of a script that
# touches every module value without network. Uses hyperfine when present,
# else a plain loop. It measures the binary that ships (the container
# image's build): build it first with
#   cargo build --profile dist --no-default-features
# or point OPSH_BIN at another build (e.g. target/release/opsh).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${OPSH_BIN:-${CARGO_TARGET_DIR:-target}/dist/opsh}
if [ ! -x "$bin" ]; then
  echo "startup.sh: no $bin: cargo build --profile dist --no-default-features (or set OPSH_BIN)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$tmp/empty.rhai"
printf 'let a = json.parse("{\\"x\\": [1,2,3]}"); let d = duration("5m"); let t = now();\n' > "$tmp/small.rhai"
export OPSH_AUDIT_LOG="$tmp/audit.jsonl" OPSH_CONFIG=/dev/null
if command -v hyperfine >/dev/null 2>&1; then
  hyperfine -N --warmup 20 "$bin run $tmp/empty.rhai" "$bin run $tmp/small.rhai" "$bin help"
else
  for s in empty small; do
    n=200
    start=$(date +%s%N)
    for _ in $(seq $n); do "$bin" run "$tmp/$s.rhai"; done
    end=$(date +%s%N)
    echo "$s.rhai: $(( (end - start) / n / 1000 )) us per run (mean of $n)"
  done
fi
