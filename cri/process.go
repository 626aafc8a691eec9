package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/podsb/podsb/crilog"
	"github.com/podsb/podsb/sandbox"
)

// exitInfo is how a container's process ended, as pause recorded it.
type exitInfo struct {
	code     int
	finished time.Time
}

func exitRecord(cs sandbox.ContainerState) *exitInfo {
	if cs.Exit == nil {
		return nil
	}
	return &exitInfo{code: cs.Exit.Code, finished: cs.Exit.Finished}
}

// defaultLogPath is the log of a container whose pod has no log directory
// or whose config names no log path: beside its record.
func (s *Server) defaultLogPath(id string) string {
	return filepath.Join(s.store.dir, "containers", id+".log")
}

// loggerControl is the node logger's control socket.
func (s *Server) loggerControl() string {
	return filepath.Join(s.store.dir, "logger.sock")
}

// loggerSocket is the attach and control socket of a container's log
// writer.
func (s *Server) loggerSocket(id string) string {
	return filepath.Join(s.store.dir, "containers", id+".sock")
}

// startProcess has the node logger (podsb-logger, which holds the
// containers' output and input across restarts of the server) write rec's
// log and starts its process, detached: pause adopts it and records its exit. Without a
// terminal the logger starts first, on the pipes' read ends; with one, it
// takes the terminal's master once the process runs. A failure leaves
// neither running.
func (s *Server) startProcess(ctx context.Context, p *sandbox.Pod, rec *containerRecord) (err error) {
	if err := sandbox.CheckTasks("run", p.Name()); err != nil {
		return err
	}
	cc := containerConfig(rec)
	if rec.LogPath == "" {
		rec.LogPath = s.defaultLogPath(rec.ID)
	}
	// The CRI's runtimes make the log's directory (kubelet makes the pod's).
	if err := os.MkdirAll(filepath.Dir(rec.LogPath), 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	opts := crilog.Options{LogPath: rec.LogPath, Socket: s.loggerSocket(rec.ID), Stdin: rec.Run.Stdin, StdinOnce: rec.Run.StdinOnce}
	var ours []*os.File // the container's ends, closed once it has them
	defer func() {
		for _, f := range ours {
			f.Close()
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			ours = append(ours, r, w)
		}
		return r, w, err
	}
	if !rec.Run.TTY {
		var outR, outW, errR, errW, inR, inW *os.File
		if outR, outW, err = pipe(); err != nil {
			return err
		}
		if errR, errW, err = pipe(); err != nil {
			return err
		}
		if rec.Run.Stdin {
			if inR, inW, err = pipe(); err != nil {
				return err
			}
		}
		opts.Stdout, opts.Stderr, opts.StdinPipe = outR, errR, inW
		if err = s.logs.Add(rec.ID, opts); err != nil {
			return err
		}
		// The logger has its ends now: ours go, so that it sees the
		// output end when the container's do.
		for _, f := range []*os.File{outR, errR, inW} {
			if f != nil {
				f.Close()
			}
		}
		cc.Stdio = [3]*os.File{inR, outW, errW}
	}
	// Started is before the process can have ended: the go-ahead is
	// inside Run.
	rec.Started = time.Now().UnixNano()
	proc, err := p.Run(ctx, cc)
	if err != nil {
		return err // the logger sees the end of its pipes and exits
	}
	if rec.Run.TTY {
		master := proc.PTY()
		ours = append(ours, master)
		opts.PTY = master
		if err = s.logs.Add(rec.ID, opts); err != nil {
			p.StopContainer(context.WithoutCancel(ctx), rec.ID, unix.SIGKILL, 0)
			return err
		}
	}
	rec.Logger = opts.Socket
	return nil
}

func stopPodContainer(ctx context.Context, p *sandbox.Pod, name string, sig unix.Signal, timeout time.Duration) error {
	return p.StopContainer(ctx, name, sig, timeout)
}

func removePodContainer(ctx context.Context, p *sandbox.Pod, name string) error {
	return p.RemoveContainer(ctx, name, true)
}

// reopenLog has rec's log writer reopen its log.
func reopenLog(ctx context.Context, rec *containerRecord) error {
	if rec.Logger == "" {
		return errors.New("the container has no log writer")
	}
	return crilog.Reopen(ctx, rec.Logger)
}

// attachContainer serves Attach: the container's log writer streams its
// output and takes its input and terminal sizes.
func (s *Server) attachContainer(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	rec, err := s.findContainer(id)
	if err != nil {
		return err
	}
	s.refresh(&rec)
	if rec.State != stateRunning || rec.Logger == "" {
		return failedPreconditionf("attach to container %s: it is not running", rec.ID)
	}
	if tty != rec.Run.TTY {
		return invalidf("attach to container %s: tty %v, but the container was created with tty %v", rec.ID, tty, rec.Run.TTY)
	}
	if stdin != nil && !rec.Run.Stdin {
		return invalidf("attach to container %s: stdin, but the container was created without stdin", rec.ID)
	}
	var sizes chan crilog.Size
	if resize != nil {
		sizes = make(chan crilog.Size)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			defer close(sizes)
			for {
				select {
				case sz, ok := <-resize:
					if !ok {
						return
					}
					select {
					case sizes <- crilog.Size{Width: sz.Width, Height: sz.Height}:
					case <-stop:
						return
					}
				case <-stop:
					return
				}
			}
		}()
	}
	var out, errw io.Writer
	if stdout != nil {
		out = stdout
	}
	if stderr != nil {
		errw = stderr
	}
	return crilog.Attach(ctx, rec.Logger, stdin, out, errw, sizes)
}
