# The QEMU test both firmwares run (firmware/run.sh, the Rust one, and
# ffi/embedded/firmware/run.sh, the C one), sourced by their run.sh:
#
#   qemu_firmware_test OUTBOX ELF NAME
#
# boots ELF in QEMU (mps2-an386, Cortex-M4) with UART0 on a TCP socket
# served by `outbox gateway --tcp`, which posts to `outbox collect`
# injecting 503s (30 %, Retry-After: 1) and refusing the poison event (a
# `poison` field). The firmware prints its lines through semihosting as
# "NAME: ...": it resets itself (SCB SYSRESETREQ, a warm reset: RAM, and so
# its simulated flash, is kept; QEMU reloads the image and the connection
# stays) after the first 150 events with a batch in flight ("NAME: boot=1
# tracked=150 ..."), its second boot tracks 150 new events, and it ends with
# "NAME: PASS" and exit 0. Each event carries "properties":{"boot":B,"n":N}.
# Passes when the firmware passed and the collector holds every good event
# of both boots exactly once, no messageId twice and not the poison event.
# Every wait is bounded.

# Waits (at most 30 s) for a line starting with $2 in file $1; prints the rest.
qemu_first_line() {
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

qemu_firmware_test() {
    local outbox="$1" elf="$2" name="$3"
    local per_boot=150 poison=100 # of the first boot
    qemu_work="$(mktemp -d)"
    qemu_pids=()
    # shellcheck disable=SC2317 # called by the trap
    qemu_cleanup() {
        for pid in "${qemu_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf "$qemu_work"
    }
    trap qemu_cleanup EXIT
    local work="$qemu_work"

    "$outbox" collect --listen 127.0.0.1:0 --out "$work/events.jsonl" --fail-rate 0.3 --retry-after 1 \
        --fail-status 503 --reject-field poison --seed 42 >"$work/collect.log" 2>&1 &
    qemu_pids+=($!)
    local collector gateway
    collector="$(qemu_first_line "$work/collect.log" "listening on ")"

    "$outbox" gateway --tcp 127.0.0.1:0 --endpoint "$collector" \
        >"$work/gateway.out" 2>"$work/gateway.log" &
    qemu_pids+=($!)
    gateway="$(qemu_first_line "$work/gateway.out" "listening on ")"

    local status=0
    timeout 240 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none \
        -semihosting-config enable=on,target=native -serial "tcp:$gateway" \
        -kernel "$elf" >"$work/qemu.log" 2>&1 || status=$?
    cat "$work/qemu.log"
    echo "gateway: $(grep -c '^outbox gateway: batch' "$work/gateway.log") batches, $(grep -c 'bad frame' "$work/gateway.log" || true) bad frames"
    kill -TERM "${qemu_pids[0]}" && wait "${qemu_pids[0]}" || true
    tail -n1 "$work/collect.log"

    fail() { echo "$name test FAILED: $*" >&2; exit 1; }
    [ "$status" -eq 0 ] || fail "qemu exited with $status"
    grep -q "$name: PASS" "$work/qemu.log" || fail "no PASS from the firmware"
    grep -q "$name: boot=1 tracked=$per_boot " "$work/qemu.log" || fail "the first boot did not reset after $per_boot events"
    # Every event by (boot, n), which the firmware writes in its properties.
    local got expected missing
    got="$(grep -o '"properties":{"boot":[0-9]*,"n":[0-9]*' "$work/events.jsonl" | sed 's/.*"boot":\([0-9]*\),"n":\([0-9]*\)/\1 \2/' | sort -k1,1n -k2,2n)"
    [ -z "$(echo "$got" | uniq -d)" ] || fail "duplicate events after dedup"
    expected="$( (seq 0 $((per_boot - 1)) | grep -vx "$poison" | sed 's/^/1 /'; seq 0 $((per_boot - 1)) | sed 's/^/2 /') )"
    if [ "$got" != "$expected" ]; then
        missing="$(comm -23 <(echo "$expected" | sort) <(echo "$got" | sort) | tr '\n' ',' | cut -c1-200)"
        fail "the collector holds $(echo "$got" | grep -c .) events, not the $((2 * per_boot - 1)) good ones; missing (boot n): $missing"
    fi
    [ -z "$(grep -o '"messageId":"[^"]*"' "$work/events.jsonl" | sort | uniq -d)" ] || fail "a messageId was used twice"
    ! grep -q '"poison"' "$work/events.jsonl" || fail "the poison event was accepted"
    echo "$name test passed: $((2 * per_boot - 1)) events over two boots delivered once each, the poison event rejected"
}
