#!/usr/bin/env bash
# The C firmware's test, the Rust firmware's (firmware/run.sh) for the C
# door: build it (build.sh: the staticlib, then arm-none-eabi-gcc), boot it
# in QEMU (mps2-an386) behind `outbox gateway --tcp` and `outbox collect`
# (30 % injected 503s, the poison event refused), with a reset of its own
# after 150 events and a batch in flight, and check that the collector
# holds each of the 299 good events of both boots exactly once
# (scripts/qemu-firmware.sh, shared with the Rust firmware's test).
# Usage: ffi/embedded/firmware/run.sh [path/to/outbox]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../../.."
outbox="$(realpath "${1:-$root/target/release/outbox}")"

bash "$here/build.sh"

# shellcheck source=../../../scripts/qemu-firmware.sh
. "$root/scripts/qemu-firmware.sh"
qemu_firmware_test "$outbox" "$here/build/outbox-c-firmware.elf" outbox-c-firmware
