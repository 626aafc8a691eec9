// podsb needs no CPU-quota-aware GOMAXPROCS, and reading cgroup files at
// every start costs time on every command.

//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

package main
