#!/usr/bin/env bash
# A firmware's footprint from its ELF's section headers, for firmware/size.sh
# (the Rust firmware) and ffi/embedded/firmware/size.sh (the C one):
#   flash = .vector_table + .text + .rodata + .ARM.exidx + .data (the
#           initial values of .data are stored in flash too)
#   RAM   = .data + .bss (static RAM; the stack comes on top)
#
#   scripts/firmware-size.sh ELF CODE_KIB RAM_KIB
#
# Exits 1 when .text + .rodata is over CODE_KIB KiB or static RAM over
# RAM_KIB KiB.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 ELF CODE_KIB RAM_KIB" >&2; exit 2; }
elf="$1" code_kib="$2" ram_kib="$3"
size_tool="$(command -v arm-none-eabi-size || command -v llvm-size || true)"
[ -n "$size_tool" ] || { echo "no size tool: apt-get install binutils-arm-none-eabi" >&2; exit 1; }
echo "$ $(basename "$size_tool") -A $elf"
"$size_tool" -A "$elf" | grep -E '^\.(vector_table|text|rodata|ARM\.exidx|data|bss) '
"$size_tool" -A "$elf" | awk -v code_max=$((code_kib * 1024)) -v ram_max=$((ram_kib * 1024)) '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" || $1 == ".ARM.exidx" { flash += $2 }
    $1 == ".text" || $1 == ".rodata" { code += $2 }
    $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" { ram += $2 }
    END {
        printf "flash: %d bytes (%.1f KiB; .text + .rodata alone %d bytes), static RAM: %d bytes (%.1f KiB)\n",
            flash, flash / 1024, code, ram, ram / 1024
        if (code > code_max || ram > ram_max) {
            printf "OVER BUDGET: .text + .rodata %d > %d or RAM %d > %d\n", code, code_max, ram, ram_max
            exit 1
        }
    }'
