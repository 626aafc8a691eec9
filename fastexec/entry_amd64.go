//go:build fastexec

package fastexec

// entry and blob are the C part (c/fastexec.c, compiled by c/build.sh into
// blob_amd64.s). entry is the podsb binary's ELF entry point when it is
// linked with -ldflags=-E=github.com/podsb/podsb/fastexec.entry, as make build does; in any
// other program they are never called.
func entry()

func blob()

var _, _ = entry, blob
