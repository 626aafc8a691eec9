package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/podsb/podsb/internal/setup"
)

// How a detached container's exit is recorded without a process per
// container: pause, the parent that reaps it, writes it.
//
// Each pod has the directory ROOT/POD/exits, which pause holds open at
// setup.ExitsFD (its program opens it there before pivot_root: Create and
// Start plan that). Before a detached container's process may run, podsb
// creates the empty file ROOT/POD/containers/NAME/exit and links it as
// exits/PID, PID being the process's PID in the pod. When pause reaps a
// child, it opens exits/PID; if there is such a name it appends a
// setup.Exit record and removes the name, and only then reaps the child
// (until then the PID cannot be reused, so the name is the child's). The
// file's modification time is when the process ended.

// exitsDirName is the pod's directory of watched processes' exit files.
const exitsDirName = "exits"

// exitFile is a container's exit file, in its directory.
const exitFile = "exit"

// ContainerExit is how a detached container's main process ended, as
// pause recorded it when it reaped the process.
type ContainerExit struct {
	// Code is the exit status, or 128+N if signal N killed the process
	// (as shells report it).
	Code int `json:"code"`
	// Signal names the signal that killed it ("SIGKILL"); empty if it
	// exited.
	Signal string `json:"signal,omitempty"`
	// Finished is when pause recorded the exit.
	Finished time.Time `json:"finished"`
}

func (p *Pod) exitsDir() string { return filepath.Join(p.Dir(), exitsDirName) }

// readExit reads an exit file: nil if pause has written nothing to it
// (the process runs, or it died with its pod's pause, which no one
// recorded).
func readExit(path string) *ContainerExit {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var b [setup.ExitSize]byte
	n, _ := f.ReadAt(b[:], 0)
	fi, err := f.Stat()
	if n != len(b) || err != nil {
		return nil
	}
	var e setup.Exit
	if _, err := binary.Decode(b[:], binary.LittleEndian, &e); err != nil {
		return nil
	}
	return exitOfRecord(e, fi.ModTime())
}

// exitRecordWait is how long Container waits for pause to record the exit
// of a container whose process has just died: pause reaps and records on
// the SIGCHLD it gets at once, so only a pause that is stopped or starved
// of CPU takes longer.
const exitRecordWait = 2 * time.Second

// exitOf returns the recorded exit of the stopped detached container cs.
// While its file has no record, its name in exits/ is still there (pause
// writes, then removes the name) and pause lives, pause is about to
// record it: it waits for that, up to exitRecordWait.
func (p *Pod) exitOf(cs ContainerState) *ContainerExit {
	if cs.HostPID {
		return p.awaitHostPIDExit(cs)
	}
	file := filepath.Join(p.containerDir(cs.Name), exitFile)
	e := readExit(file)
	if e != nil || cs.PodPID <= 0 {
		return e
	}
	link := filepath.Join(p.exitsDir(), strconv.Itoa(cs.PodPID))
	deadline := time.Now().Add(exitRecordWait)
	for sameFile(link, file) && p.Status() == specs.StateRunning && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		if e = readExit(file); e != nil {
			return e
		}
	}
	return readExit(file)
}

// exitOfRecord interprets waitid's si_code and si_status.
func exitOfRecord(e setup.Exit, finished time.Time) *ContainerExit {
	ce := &ContainerExit{Finished: finished.UTC()}
	switch e.Code {
	case setup.CLDExited:
		ce.Code = int(e.Status)
	case setup.CLDKilled, setup.CLDDumped:
		ce.Code = 128 + int(e.Status)
		ce.Signal = unix.SignalName(unix.Signal(e.Status))
		if ce.Signal == "" {
			ce.Signal = "signal " + strconv.Itoa(int(e.Status))
		}
	default:
		return nil
	}
	return ce
}

// makeExitsDir makes the pod's exits directory, or empties it: a name
// left there by a pause that died is no process of a new pause, and must
// not be taken for one. The caller holds the pod's lock and no pause
// runs.
func makeExitsDir(dir string) error {
	exits := filepath.Join(dir, exitsDirName)
	if err := os.Mkdir(exits, 0o700); err == nil || !errors.Is(err, os.ErrExist) {
		return err
	}
	names, err := readDirNames(exits)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(exits, n)); err != nil && !isNotExist(err) {
			return err
		}
	}
	return nil
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// openExitsOp is the operation of a pod's init that opens the exits
// directory at setup.ExitsFD: first, before pivot_root hides the host. A
// detached mount of it, rather than the directory: pause, which keeps the
// fd, then holds nothing from which ".." leads to the host (a pod's
// process with CAP_SYS_PTRACE could open it through /proc/1/fd/3).
func openExitsOp(dir string) setup.Op {
	return setup.Op{Code: setup.OpenTree, Num: setup.ExitsFD, Str: []string{filepath.Join(dir, exitsDirName)}}
}

// watchExit makes the container's exit file and links it as exits/PID, so
// pause records the exit of the process waiting at Sync. A pod whose
// directory has no exits directory was made by an older podsb: its pause
// records nothing, and the container's exit stays unknown.
func (r *containerStart) watchExit(context.Context) error {
	if !r.cc.Detach || r.cc.PID.Host { // Host: watchHostPID
		return nil
	}
	exits := r.pod.exitsDir()
	if _, err := os.Stat(exits); isNotExist(err) {
		return nil
	}
	file := filepath.Join(r.dir, exitFile)
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	link := filepath.Join(exits, strconv.Itoa(r.proc.podPID))
	err = os.Link(file, link)
	if errors.Is(err, os.ErrExist) && processLives(r.spawnFD) {
		// The process holds its PID (it waits at Sync, unreaped), so a
		// name of that PID is no live process's: one whose pause died
		// unrecorded. It goes.
		os.Remove(link)
		err = os.Link(file, link)
	}
	if err != nil {
		return fmt.Errorf("container %s: record its exit: %w", r.name, err)
	}
	r.onFail(func() { unlinkExit(link, file) })
	// Linked while the process lived: the name is its own until pause
	// reaps it.
	if !processLives(r.spawnFD) {
		return fmt.Errorf("container %s: its process died before it ran", r.name)
	}
	return nil
}

// processLives tells whether the process behind pidfd has not exited.
func processLives(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

// unlinkExit removes the name link if it is still the file's: pause
// removes it when it records the exit, and the PID may since name another
// container's.
func unlinkExit(link, file string) {
	if sameFile(link, file) {
		os.Remove(link)
	}
}

// sameFile tells whether link is a name of file.
func sameFile(link, file string) bool {
	var a, b unix.Stat_t
	return unix.Stat(file, &a) == nil && unix.Lstat(link, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}
