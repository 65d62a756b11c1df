#!/usr/bin/env bash
# The firmware's test: boot it in QEMU (mps2-an386, Cortex-M4) with UART0
# on a TCP socket served by `outbox gateway --tcp`, which posts to
# `outbox collect` injecting 503s (30 %, Retry-After: 1) and refusing the poison event.
# The firmware resets itself (SCB SYSRESETREQ, a warm reset: RAM, and so its
# simulated flash, is kept; QEMU reloads the image and the connection stays)
# after the first 150 events, with a batch in flight, and its second boot
# tracks 150 new events: their messageIds must not repeat the first boot's.
# Passes when the firmware reports PASS through semihosting and exits 0,
# and the collector holds every good event of both boots exactly once and
# not the poison one. Every wait is bounded (scripts/qemu-firmware.sh, which
# the C firmware's test shares). Usage: firmware/run.sh [path/to/outbox]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
outbox="$(realpath "${1:-$here/../target/release/outbox}")"
elf="$here/target/thumbv7em-none-eabihf/release/outbox-firmware"

(cd "$here" && cargo build --release --quiet)

# shellcheck source=../scripts/qemu-firmware.sh
. "$here/../scripts/qemu-firmware.sh"
qemu_firmware_test "$outbox" "$elf" outbox-firmware
