//go:build fastexec

#include "textflag.h"

// entry is the ELF entry point of podsb (go build -tags fastexec
// -ldflags=-E=github.com/podsb/podsb/fastexec.entry): blob gets the initial stack pointer,
// and returns unless it ran the command; then the Go runtime starts as if
// it had been entered directly.
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0-0
	MOVQ	SP, DI
	CALL	·blob(SB)
	JMP	_rt0_amd64_linux(SB)
