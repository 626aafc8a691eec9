package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/podsb/podsb/internal/setup"
	"github.com/podsb/podsb/reaper"
)

// program is a run of "pause run": pause, executed from a sealed memfd,
// that executes a list of operations (package internal/setup) and ends by
// executing a command. The child's fds: 0-2 stdio, 3 the program, 4 the
// status pipe, 5 the go-ahead pipe, 6 the memfd, then the extra files.
type program struct {
	ops                                      []setup.Op
	progR, progW, statusR, statusW, goR, goW *os.File
	pause                                    *os.File
	spawned                                  int  // the PID a Spawn reported, in the pod
	pendingSync                              bool // synced, before the Spawn's report
}

// programExtraFD is the child's fd of the first extra file.
const programExtraFD = setup.ExtraFD

func newProgram(ops []setup.Op) (*program, error) {
	pg := &program{ops: ops}
	var err error
	if pg.pause, err = reaper.Memfd(); err != nil {
		return nil, err
	}
	for _, pp := range [][2]**os.File{{&pg.progR, &pg.progW}, {&pg.statusR, &pg.statusW}, {&pg.goR, &pg.goW}} {
		if *pp[0], *pp[1], err = os.Pipe(); err != nil {
			pg.close()
			return nil, err
		}
	}
	return pg, nil
}

// fork starts the program from the calling thread, in its namespaces and
// root, with the stdio of s. It returns the child's PID.
func (pg *program) fork(env []string, dir string, s *stdio, extra []*os.File, sys *syscall.SysProcAttr) (int, error) {
	files := append([]*os.File{pg.progR, pg.statusW, pg.goR, pg.pause}, extra...)
	pid, err := fork("/proc/self/fd/"+strconv.Itoa(setup.PauseFD), []string{"pause", "run"}, env, dir, s, files, sys)
	// The child has its ends, or there is no child.
	for _, f := range []*os.File{pg.progR, pg.statusW, pg.goR} {
		f.Close()
	}
	return pid, err
}

// run sends the program and follows it until the command is executed (the
// status pipe's end of file). onSync, if the program syncs, runs while the
// child waits; spawned is the PID reported by a Spawn operation. A failed
// operation is returned as a *setup.OpError.
func (pg *program) run(ctx context.Context, onSync func() error) (spawned int, err error) {
	if err := pg.send(); err != nil {
		return 0, err
	}
	for {
		synced, err := pg.follow(ctx)
		if err != nil || !synced {
			return pg.spawned, err
		}
		if onSync != nil {
			if err := onSync(); err != nil {
				return pg.spawned, err
			}
		}
		if err := pg.goAhead(); err != nil {
			return pg.spawned, err
		}
	}
}

// send writes the program to the child.
func (pg *program) send() error {
	_, err := pg.progW.Write(setup.Encode(pg.ops))
	pg.progW.Close()
	if err != nil {
		return fmt.Errorf("send the program: %w", err)
	}
	return nil
}

// follow reads the status pipe until the child waits at a Sync (synced;
// if a Spawn comes before the Sync, also once its PID is known, in
// pg.spawned) or has executed the command (end of file).
func (pg *program) follow(ctx context.Context) (synced bool, err error) {
	stop := context.AfterFunc(ctx, func() { pg.statusR.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		var rec [8]byte
		_, err := io.ReadFull(pg.statusR, rec[:])
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		a, b := binary.LittleEndian.Uint32(rec[:4]), binary.LittleEndian.Uint32(rec[4:])
		switch a {
		case setup.Synced:
			// The spawned child may sync before its parent reports it.
			if pg.spawnsBeforeSync() && pg.spawned == 0 {
				pg.pendingSync = true
				continue
			}
			return true, nil
		case setup.Spawned:
			pg.spawned = int(b)
			if pg.pendingSync {
				pg.pendingSync = false
				return true, nil
			}
		default:
			return false, setup.Failure(pg.ops, rec[:])
		}
	}
}

// spawnsBeforeSync tells whether the program's Spawn comes before its Sync.
func (pg *program) spawnsBeforeSync() bool {
	spawn := false
	for _, op := range pg.ops {
		switch op.Code {
		case setup.Spawn:
			spawn = true
		case setup.Sync:
			return spawn
		}
	}
	return false
}

// goAhead lets a child waiting at Sync go on: one byte, then end of file.
// Should podsb die before, the child sees end of file alone and stops.
func (pg *program) goAhead() error {
	_, err := pg.goW.Write([]byte{1})
	pg.goW.Close()
	if err != nil {
		return fmt.Errorf("let the container's init go on: %w", err)
	}
	return nil
}

func (pg *program) close() {
	for _, f := range []*os.File{pg.progR, pg.progW, pg.statusR, pg.statusW, pg.goR, pg.goW, pg.pause} {
		if f != nil {
			f.Close()
		}
	}
}

// commandOps ends a program: the process's privileges, then the command.
// With spawn, the command is forked off so that pause adopts it; else it
// dies with the thread that forked the program (PR_SET_PDEATHSIG). pod is
// the pod's Security, whose capabilities are the command's defaults.
func commandOps(sec, pod Security, u execUser, spawn bool, file string, args []string) ([]setup.Op, error) {
	mask, all, err := sec.commandCaps(pod)
	if err != nil {
		return nil, err
	}
	var ops []setup.Op
	if spawn {
		ops = append(ops, setup.Op{Code: setup.Spawn})
	}
	groups := make([]string, len(u.groups))
	for i, g := range u.groups {
		groups[i] = fmt.Sprint(g)
	}
	priv, err := sec.privilegeOps(u.uid, mask, all, []setup.Op{{Code: setup.SetIDs, Num: uint64(u.uid) | uint64(u.gid)<<32, Str: groups}})
	if err != nil {
		return nil, err
	}
	ops = append(ops, priv...)
	if !spawn {
		ops = append(ops, setup.Op{Code: setup.Pdeathsig})
	}
	return append(ops, setup.Op{Code: setup.Exec, Str: append([]string{file}, args...)}), nil
}

// execFailure turns the failure of a program's Exec operation into podsb's
// error classes; other errors pass through.
func (p *Pod) programError(name string, err error) error {
	var oe *setup.OpError
	if errors.As(err, &oe) && oe.Op.Code == setup.Exec {
		return p.startError(name, oe.Err)
	}
	return err
}
