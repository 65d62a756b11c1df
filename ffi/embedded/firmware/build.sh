#!/usr/bin/env bash
# Builds the C firmware: the staticlib (cargo, ffi/embedded, release) and
# the C files (arm-none-eabi-gcc, Debian's gcc-arm-none-eabi) linked into
# build/outbox-c-firmware.elf. No libc: -nostdlib, the library brings
# memcpy/memset and the compiler's built-ins (compiler_builtins).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# cargo honours CARGO_TARGET_DIR (scripts/test may set it): so does this.
lib="${CARGO_TARGET_DIR:-$here/../target}/thumbv7em-none-eabihf/release/liboutbox_embedded.a"
out="$here/build"
command -v arm-none-eabi-gcc >/dev/null 2>&1 || {
    echo "no arm-none-eabi-gcc: apt-get install gcc-arm-none-eabi" >&2
    exit 1
}
(cd "$here/.." && cargo build --release --quiet)
mkdir -p "$out"
cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -std=c11 -Os -g
    -ffreestanding -ffunction-sections -fdata-sections -Wall -Wextra -Werror
    -I "$here/../include")
objs=()
for src in startup main checks clock uart nor semihost events mem; do
    arm-none-eabi-gcc "${cflags[@]}" -c "$here/$src.c" -o "$out/$src.o"
    objs+=("$out/$src.o")
done
arm-none-eabi-gcc "${cflags[@]}" -nostdlib -T "$here/link.ld" -Wl,--gc-sections -Wl,-z,noexecstack \
    -Wl,-Map="$out/outbox-c-firmware.map" \
    "${objs[@]}" "$lib" -lgcc -o "$out/outbox-c-firmware.elf"
