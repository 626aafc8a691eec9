#!/bin/sh
# build.sh compiles pause.c into the committed pause-amd64 image that package
# reaper embeds, and records the compiler and linker that built it in
# COMPILER. Run it after changing pause.c (or the generated setup.h it
# includes) and commit the three files:
#
#	reaper/pause/build.sh            # writes reaper/pause/pause-amd64 and COMPILER
#	reaper/pause/build.sh OUT        # writes OUT only (the reaper tests)
#
# The output is byte-for-byte reproducible with a given compiler and linker:
# no build-id, no debug info, no symbols, no .comment, and the source is
# compiled by a fixed relative name. Another compiler (another gcc version,
# clang) builds a working pause with other bytes; TestPauseImageUpToDate
# compares bytes only when the compiler is the one in COMPILER, and
# otherwise the reaper tests run against a fresh build.
#
# CC names the compiler (default: gcc, else clang, else cc), e.g.
# CC=x86_64-linux-gnu-gcc on a non-amd64 host.
set -eu

out=${1:-$(dirname "$0")/pause-amd64}
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac
cd "$(dirname "$0")"
if [ -z "${CC:-}" ]; then
	CC=$(command -v gcc || command -v clang || command -v cc || true)
fi
if [ -z "$CC" ]; then
	echo "build.sh: no C compiler (gcc, clang or cc); set CC" >&2
	exit 1
fi

case $($CC -dumpmachine) in
x86_64-*) ;;
*)
	echo "build.sh: $CC targets $($CC -dumpmachine), not x86_64; set CC to an x86_64 compiler" >&2
	exit 1
	;;
esac

export LC_ALL=C
tmp=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$tmp"' EXIT

# Compiler:
#   -ffreestanding -nostdlib   no libc, no crt files: pause.c has its own _start
#   -static -fno-pie           fixed addresses, no dynamic loader, no relocations
#   -fno-stack-protector       the canary lives in TLS, which does not exist here
#   -fcf-protection=none       no endbr64 and no .note.gnu.property
#   -fno-*unwind-tables        no .eh_frame
#   -fno-ident                 no .comment naming the compiler
#   -fno-inline-functions-called-once
#                              keeps such functions out of setup's big switch,
#                              where inlining them costs more bytes than the
#                              calls: with it the program fits its one page
#   -fno-jump-tables           so does a chain of compares for that switch
#                              (it runs once per pod, and the table would
#                              be 8 bytes a case)
# Linker:
#   --build-id=none            the id would be the only nondeterministic bytes
#   -z noseparate-code         headers, code and constants share one page:
#   -z max-page-size=4096      the whole program is a single 4 KiB mapping
#   -z norelro -z noexecstack  no RELRO segment; a non-executable stack
#   -s                         strip symbols
"$CC" -std=c11 -Os -Wall -Wextra -Werror \
	-ffreestanding -nostdlib -static -fno-pie \
	-fno-stack-protector -fcf-protection=none \
	-fno-asynchronous-unwind-tables -fno-unwind-tables -fno-ident \
	-fno-inline-functions-called-once -fno-jump-tables \
	-ffunction-sections -fdata-sections \
	-Wl,--gc-sections -Wl,--build-id=none \
	-Wl,-z,noseparate-code -Wl,-z,max-page-size=4096 \
	-Wl,-z,norelro -Wl,-z,noexecstack -Wl,-s \
	-o "$tmp" pause.c

# The linker puts its section headers (and their names) after the loaded
# segment, where nothing maps them: cut the file at the segment's end and
# clear e_shoff, e_shentsize, e_shnum and e_shstrndx. Each pod's pause runs
# from a memfd holding the image, so a program of one page costs a pod
# one page of memory, not two. The first program header must be the one
# PT_LOAD, from offset 0 (TestImageIsStaticELF checks the result).
u64() { od -An -t u8 -j "$1" -N 8 "$tmp" | tr -d ' '; }
u32() { od -An -t u4 -j "$1" -N 4 "$tmp" | tr -d ' '; }
phoff=$(u64 32)
if [ "$(u32 "$phoff")" != 1 ] || [ "$(u64 $((phoff + 8)))" != 0 ]; then
	echo "build.sh: the first program header is not a PT_LOAD from offset 0" >&2
	exit 1
fi
end=$(u64 $((phoff + 32)))
cut=$(mktemp "${out}.XXXXXX")
trap 'rm -f "$tmp" "$cut"' EXIT
head -c "$end" "$tmp" > "$cut"
dd if=/dev/zero of="$cut" bs=1 seek=40 count=8 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$cut" bs=1 seek=58 count=6 conv=notrunc 2>/dev/null
mv "$cut" "$tmp"
chmod 0755 "$tmp"
mv "$tmp" "$out"
trap - EXIT
if [ $# -eq 0 ]; then
	sh ./compiler.sh "$CC" > COMPILER
fi
