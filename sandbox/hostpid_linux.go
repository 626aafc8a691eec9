package sandbox

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// Containers in the host's PID namespace (PIDMode.Host).
//
// pause is PID 1 of the pod's own PID namespace, and records the exits of
// the processes it reaps (exit_linux.go); a process in the host's PID
// namespace cannot be its child, as a child is born in its parent's
// namespace or one below it. So such a container's start spawns its
// process with CLONE_PARENT: its parent is the process that started it
// (podsb cri, say), and watchHostPID, in that process, waits for it and
// writes the same setup.Exit record pause would have written to the
// container's exit file. If that process ends first, the container's
// process goes to the host's init (or a subreaper) and its exit is unknown
// (ContainerState.Exit nil), as for a container in another container's
// PID namespace.
//
// pause's exit kills every process of the pod's PID namespace, but not
// these: stopping or removing the pod kills them (killHostPIDContainers),
// every process of their cgroups.

// watchHostPID starts waiting for the container's process, the caller's
// child (spawned with CLONE_PARENT), and makes its exit file. The waiter
// reaps the process however the start ends: a failed start kills it.
func (r *containerStart) watchHostPID() error {
	file := filepath.Join(r.dir, exitFile)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		killAndReap(r.spawnFD)
		return err
	}
	fd, err := unix.Dup(r.spawnFD)
	if err != nil {
		f.Close()
		killAndReap(r.spawnFD)
		return os.NewSyscallError("dup", err)
	}
	go recordHostPIDExit(fd, f)
	return nil
}

// killAndReap kills the caller's child behind pidfd and reaps it.
func killAndReap(pidfd int) {
	unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	var info unix.Siginfo
	unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
}

// recordHostPIDExit waits for the child behind pidfd to exit, appends its
// setup.Exit record to f, and only then reaps it: while the record is
// being written the process is a zombie, which awaitHostPIDExit waits for.
func recordHostPIDExit(pidfd int, f *os.File) {
	defer unix.Close(pidfd)
	defer f.Close()
	var si setup.Siginfo
	for {
		// x/sys's Siginfo hides si_status: setup's has it.
		_, _, errno := unix.Syscall6(unix.SYS_WAITID, unix.P_PIDFD, uintptr(pidfd), uintptr(unsafe.Pointer(&si)),
			unix.WEXITED|unix.WNOWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return
		}
		break
	}
	var b [setup.ExitSize]byte
	if _, err := binary.Encode(b[:], binary.LittleEndian, setup.Exit{Code: si.Code, Status: si.Status}); err == nil {
		f.Write(b[:])
	}
	var info unix.Siginfo
	unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
}

// awaitHostPIDExit waits, up to exitRecordWait, while the container's
// process is a zombie that has not been reaped: its parent, recording its
// exit, reaps it right after.
func (p *Pod) awaitHostPIDExit(cs ContainerState) *ContainerExit {
	file := filepath.Join(p.containerDir(cs.Name), exitFile)
	deadline := time.Now().Add(exitRecordWait)
	for {
		if e := readExit(file); e != nil {
			return e
		}
		ps, err := readStat(cs.Pid)
		if err != nil || ps.startTime != cs.StartTime || ps.state != 'Z' || time.Now().After(deadline) {
			return readExit(file)
		}
		time.Sleep(time.Millisecond)
	}
}

// killHostPIDContainers kills every process of the pod's containers in the
// host's PID namespace, which pause's exit does not end: the processes of
// each such container's cgroup, else its main process (checked by its
// start time through a pidfd).
func (p *Pod) killHostPIDContainers() {
	names, err := readDirNames(filepath.Join(p.Dir(), "containers"))
	if err != nil {
		return
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(p.containerDir(name), stateFile))
		var cs ContainerState
		if err != nil || json.Unmarshal(b, &cs) != nil || !cs.HostPID {
			continue
		}
		if m, err := cgroupManagerOf(p.containerCgroup(name), &cgroups.Resources{SkipDevices: true}); err == nil {
			killCgroup(m)
		}
		fd, err := unix.PidfdOpen(cs.Pid, 0)
		if err != nil {
			continue
		}
		if ps, err := readStat(cs.Pid); err == nil && ps.startTime == cs.StartTime {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			awaitExit(fd, cs.Pid, DefaultStopTimeout, false)
		}
		unix.Close(fd)
	}
}
