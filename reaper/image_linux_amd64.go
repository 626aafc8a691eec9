package reaper

import _ "embed" // for go:embed

// image is pause/pause.c built by pause/build.sh.
//
//go:embed pause/pause-amd64
var image []byte
