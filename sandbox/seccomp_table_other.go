//go:build !amd64

package sandbox

// No precomputed filter on this architecture: seccompFilter assembles it.
const (
	tableCaps   = 0
	tableFilter = ""
)
