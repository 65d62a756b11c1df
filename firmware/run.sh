#!/usr/bin/env bash
# The firmware's test: boot it in QEMU (mps2-an386, Cortex-M4) with UART0
# on a TCP socket served by `outbox gateway --tcp`, which posts to
# `outbox collect` injecting 503s (30 %, Retry-After: 1) and refusing the poison event.
# Passes when the firmware reports PASS through semihosting and exits 0,
# and the collector holds every good event exactly once and not the poison
# one. Every wait is bounded. Usage: firmware/run.sh [path/to/outbox]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
outbox="$(realpath "${1:-$here/../target/release/outbox}")"
elf="$here/target/thumbv7em-none-eabihf/release/outbox-firmware"
events=300
poison=150

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Waits (at most 30 s) for a line starting with $2 in file $1; prints the rest.
first_line() {
    for _ in $(seq 300); do
        if line="$(grep -m1 "^$2" "$1" 2>/dev/null)"; then
            echo "${line#"$2"}"
            return 0
        fi
        sleep 0.1
    done
    echo "no '$2' line in $1:" >&2
    cat "$1" >&2
    return 1
}

(cd "$here" && cargo build --release --quiet)

"$outbox" collect --listen 127.0.0.1:0 --out "$work/events.jsonl" --fail-rate 0.3 --retry-after 1 \
    --fail-status 503 --reject-field poison --seed 42 >"$work/collect.log" 2>&1 &
pids+=($!)
collector="$(first_line "$work/collect.log" "listening on ")"

"$outbox" gateway --tcp 127.0.0.1:0 --endpoint "$collector" \
    >"$work/gateway.out" 2>"$work/gateway.log" &
pids+=($!)
gateway="$(first_line "$work/gateway.out" "listening on ")"

status=0
timeout 240 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
    -semihosting-config enable=on,target=native -serial "tcp:$gateway" \
    -kernel "$elf" >"$work/qemu.log" 2>&1 || status=$?
cat "$work/qemu.log"
echo "gateway: $(grep -c '^outbox gateway: batch' "$work/gateway.log") batches, $(grep -c 'bad frame' "$work/gateway.log" || true) bad frames"
kill -TERM "${pids[0]}" && wait "${pids[0]}" || true
tail -n1 "$work/collect.log"

fail() { echo "firmware test FAILED: $*" >&2; exit 1; }
[ "$status" -eq 0 ] || fail "qemu exited with $status"
grep -q "outbox-firmware: PASS" "$work/qemu.log" || fail "no PASS from the firmware"
ids="$(grep -o '"messageId":"fw-1-[0-9]*"' "$work/events.jsonl" | grep -o '[0-9]*"$' | tr -d '"' | sort -n)"
[ -z "$(echo "$ids" | uniq -d)" ] || fail "duplicate events after dedup"
expected="$(seq 0 $((events - 1)) | grep -vx "$poison")"
[ "$ids" = "$expected" ] || fail "the collector holds $(echo "$ids" | wc -l) events, not the $((events - 1)) good ones"
! grep -q '"poison"' "$work/events.jsonl" || fail "the poison event was accepted"
echo "firmware test passed: $((events - 1)) events delivered once each, the poison event rejected"
