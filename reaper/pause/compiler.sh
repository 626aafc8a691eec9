#!/bin/sh
# compiler.sh prints what decides pause-amd64's bytes: the first line of
# the compiler's and of its linker's --version. COMPILER holds it for the
# committed image; TestPauseImageUpToDate compares bytes only when this
# prints the same.
set -eu
CC=$1
"$CC" --version | head -n 1
ld=$("$CC" -print-prog-name=ld)
"$ld" --version | head -n 1
