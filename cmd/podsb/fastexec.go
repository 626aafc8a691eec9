package main

// The fast path of podsb exec: with make build, its C part is the binary's
// entry point (package fastexec); with a plain go build, an empty package.
import _ "github.com/podsb/podsb/fastexec"
