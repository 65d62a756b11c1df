#!/usr/bin/env bash
# The C firmware's footprint, as firmware/size.sh reports the Rust one's
# (scripts/firmware-size.sh reads the ELF build.sh builds):
#   flash = .vector_table + .text + .rodata + .ARM.exidx + .data (the
#           initial values of .data are stored in flash too)
#   RAM   = .data + .bss (static RAM, the OutboxDevice and the batch buffer
#           among it; the stack comes on top)
# Exits 1 over budget: 30 KiB of code and constants, 8 KiB of static RAM.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/../../../scripts/firmware-size.sh" "$here/build/outbox-c-firmware.elf" 30 8
