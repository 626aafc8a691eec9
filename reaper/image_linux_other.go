//go:build linux && !amd64

package reaper

// image is nil: pause/pause.c is written for amd64 only.
var image []byte
