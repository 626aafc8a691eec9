package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"podsb/reaper"
	"podsb/rootfs"
)

// initArg0 is the argv[0] of a pod's init: the re-exec of the running binary
// that Create starts in the pod's new namespaces.
const initArg0 = "podsb-init"

// pauseOOMScoreAdj is the OOM score adjustment of pause, as Kubernetes gives
// its pause container.
const pauseOOMScoreAdj = "-998"

// The fds Create passes to the pod's init.
const (
	initConfigFD = 3
	initStatusFD = 4
	initPauseFD  = 5
)

// init turns a re-exec started by Create into the pod's init before main,
// or a test's TestMain, gets to run. The guard is strict: the argv[0] Create
// uses, nothing else on the command line, and PID 1 of a new PID namespace.
func init() {
	if len(os.Args) != 1 || os.Args[0] != initArg0 || os.Getpid() != 1 {
		return
	}
	err := podInit()
	// Only failures get here: success replaces this process with pause.
	status := os.NewFile(initStatusFD, "status")
	fmt.Fprint(status, err)
	os.Exit(1)
}

// podInit prepares the pod from inside its namespaces, then becomes pause.
func podInit() error {
	for _, fd := range []int{initConfigFD, initStatusFD, initPauseFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return fmt.Errorf("fd %d: %w", fd, err)
		}
	}
	var ic initConfig
	cfg := os.NewFile(initConfigFD, "config")
	if err := json.NewDecoder(cfg).Decode(&ic); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	cfg.Close()
	// The kernel should kill pause last: without it the pod is gone. Lowering
	// the score needs CAP_SYS_RESOURCE; without it pause keeps the score it
	// inherited rather than failing the pod.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(pauseOOMScoreAdj), 0); err != nil && !errors.Is(err, os.ErrPermission) {
		return err
	}
	if err := rootfs.Prepare(&ic.Rootfs); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(ic.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	if err := rootfs.Pivot(ic.Rootfs.Target); err != nil {
		return err
	}
	return reaper.Exec(initPauseFD)
}

func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}
