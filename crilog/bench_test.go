package crilog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchLoggers is how many containers each side runs at once: PSS
// divides the pages they share (the binary, libraries) among them.
const benchLoggers = 10

// benchLoggersN is how many containers the run in progress starts.
var benchLoggersN = benchLoggers

// benchWorkload waits for a line on FIFO go, writes 10 MiB in lines of
// 100 bytes and DONE, and waits for a line on FIFO end.
const benchWorkload = `read x < "$1/go"; head -c 10485760 /dev/zero | tr '\0' x | fold -w 99; echo; echo DONE; read x < "$1/end"`

// footprint is one logger process's memory, in KiB.
type footprint struct{ rss, pss int }

func smapsRollup(pid int) (footprint, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return footprint{}, err
	}
	var f footprint
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "Rss":
			f.rss = n
		case "Pss":
			f.pss = n
		}
	}
	return f, nil
}

// benchCtr is one container of the benchmark: its directory (FIFOs go and
// end, the log) and its logger's PID.
type benchCtr struct {
	dir, log string
	pid      int
	start    time.Duration
	wait     func()
}

func mkfifos(b *testing.B, dir string) {
	for _, f := range []string{"go", "end"} {
		if err := syscall.Mkfifo(filepath.Join(dir, f), 0o600); err != nil {
			b.Fatal(err)
		}
	}
}

// signalFIFO writes a line to a FIFO the workload reads.
func signalFIFO(b *testing.B, path string) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	f.Write([]byte("\n"))
	f.Close()
}

// waitDone waits until the log's last record is DONE.
func waitDone(b *testing.B, log string) {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		data, err := os.ReadFile(log)
		if err == nil && bytes.HasSuffix(data, []byte(" F DONE\n")) {
			return
		}
	}
	b.Fatalf("%s: no DONE", log)
}

// startPodsbLogger starts the workload behind podsb-logger.
func startPodsbLogger(b *testing.B, dir string) *benchCtr {
	c := &benchCtr{dir: dir, log: filepath.Join(dir, "log")}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	t0 := time.Now()
	h, err := Start(Options{Binary: loggerBin, LogPath: c.log, Socket: filepath.Join(dir, "sock"), Stdout: outR, Stderr: errR})
	c.start = time.Since(t0)
	if err != nil {
		b.Fatal(err)
	}
	outR.Close()
	errR.Close()
	cmd := exec.Command("/bin/sh", "-c", benchWorkload, "sh", dir)
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	outW.Close()
	errW.Close()
	c.pid = h.PID
	c.wait = func() {
		cmd.Wait()
		h.Wait()
	}
	return c
}

// startNodeLogger starts the workload behind the node logger of n.
func startNodeLogger(b *testing.B, n *Node, dir string) *benchCtr {
	c := &benchCtr{dir: dir, log: filepath.Join(dir, "log")}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	t0 := time.Now()
	sock := filepath.Join(dir, "sock")
	err := n.Add(filepath.Base(dir), Options{LogPath: c.log, Socket: sock, Stdout: outR, Stderr: errR})
	c.start = time.Since(t0)
	if err != nil {
		b.Fatal(err)
	}
	outR.Close()
	errR.Close()
	cmd := exec.Command("/bin/sh", "-c", benchWorkload, "sh", dir)
	cmd.Stdout, cmd.Stderr = outW, errW
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	outW.Close()
	errW.Close()
	c.pid = n.PID()
	c.wait = func() {
		cmd.Wait()
		_ = Attach(context.Background(), sock, nil, nil, nil, nil) // until its log is written
	}
	return c
}

// fakeOCIRuntime is an OCI runtime for conmon: create starts the bundle's
// workload in the background with conmon's pipes and writes its PID.
const fakeOCIRuntime = `#!/bin/sh
while [ $# -gt 1 ]; do case $1 in --bundle) bundle=$2; shift;; --pid-file) pidfile=$2; shift;; esac; shift; done
sh -c "$(cat "$bundle/workload")" sh "$bundle" &
echo $! > "$pidfile"
`

// startConmon starts the workload behind conmon (as CRI-O does: conmon
// forks its monitor and returns), with the fake runtime.
func startConmon(b *testing.B, conmon, runtime, dir string) *benchCtr {
	c := &benchCtr{dir: dir, log: filepath.Join(dir, "log")}
	os.WriteFile(filepath.Join(dir, "workload"), []byte(benchWorkload), 0o644)
	for _, d := range []string{"exit", "sock"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	id := filepath.Base(dir)
	pidfile := filepath.Join(dir, "ctr.pid")
	cmd := exec.Command(conmon, "--api-version", "1", "-c", id, "-u", id, "-n", id, "-r", runtime, "-b", dir,
		"-p", pidfile, "-P", filepath.Join(dir, "conmon.pid"), "-l", "k8s-file:"+c.log,
		"--exit-dir", filepath.Join(dir, "exit"), "--socket-dir-path", filepath.Join(dir, "sock"), "--log-level", "error")
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for {
		if _, err := os.Stat(pidfile); err == nil {
			break
		}
		if time.Since(t0) > 10*time.Second {
			b.Fatal("conmon: no container PID")
		}
		time.Sleep(50 * time.Microsecond)
	}
	c.start = time.Since(t0)
	cmd.Wait()
	raw, err := os.ReadFile(filepath.Join(dir, "conmon.pid"))
	if err != nil {
		b.Fatal(err)
	}
	c.pid, _ = strconv.Atoi(strings.TrimSpace(string(raw)))
	c.wait = func() {
		// conmon's monitor is no child of ours: wait for it to go.
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if syscall.Kill(c.pid, 0) != nil {
				return
			}
		}
		syscall.Kill(c.pid, syscall.SIGKILL)
		b.Errorf("conmon %d did not exit", c.pid)
	}
	return c
}

// BenchmarkLoggerFootprint measures, for benchLoggers containers at once,
// each log writer's memory (RSS and PSS from smaps_rollup, mean) idle and
// after 10 MiB of output, and its start time: podsb-logger until Start
// returns (it serves its socket), conmon until the container's PID file
// exists (it includes a fake runtime, a shell script). conmon is measured
// in the same run if installed (Debian's conmon, a dependency of podman).
func BenchmarkLoggerFootprint(b *testing.B) {
	conmon := ""
	for _, p := range []string{"/usr/bin/conmon", "/usr/libexec/podman/conmon"} {
		if _, err := os.Stat(p); err == nil {
			conmon = p
			break
		}
	}
	type result struct {
		name        string
		idle, after footprint
		start       time.Duration
	}
	var results []result
	run := func(name string, start func(dir string) *benchCtr) {
		var r result
		r.name = name
		for i := 0; i < b.N; i++ {
			var cs []*benchCtr
			for j := 0; j < benchLoggersN; j++ {
				dir := b.TempDir()
				mkfifos(b, dir)
				cs = append(cs, start(dir))
			}
			time.Sleep(200 * time.Millisecond) // settle
			// A node logger serving them all counts once.
			seen := map[int]bool{}
			for _, c := range cs {
				r.start += c.start
				if seen[c.pid] {
					continue
				}
				seen[c.pid] = true
				f, err := smapsRollup(c.pid)
				if err != nil {
					b.Fatal(err)
				}
				r.idle.rss += f.rss
				r.idle.pss += f.pss
			}
			for _, c := range cs {
				signalFIFO(b, filepath.Join(c.dir, "go"))
			}
			for _, c := range cs {
				waitDone(b, c.log)
			}
			seen = map[int]bool{}
			for _, c := range cs {
				if seen[c.pid] {
					continue
				}
				seen[c.pid] = true
				f, err := smapsRollup(c.pid)
				if err != nil {
					b.Fatal(err)
				}
				r.after.rss += f.rss
				r.after.pss += f.pss
			}
			for _, c := range cs {
				signalFIFO(b, filepath.Join(c.dir, "end"))
			}
			for _, c := range cs {
				c.wait()
			}
		}
		n := b.N * benchLoggersN
		r.idle, r.after, r.start = footprint{r.idle.rss / n, r.idle.pss / n}, footprint{r.after.rss / n, r.after.pss / n}, r.start/time.Duration(n)
		results = append(results, r)
		b.ReportMetric(float64(r.idle.rss), name+"-idle-RSS-KiB")
		b.ReportMetric(float64(r.idle.pss), name+"-idle-PSS-KiB")
		b.ReportMetric(float64(r.after.rss), name+"-10MiB-RSS-KiB")
		b.ReportMetric(float64(r.after.pss), name+"-10MiB-PSS-KiB")
		b.ReportMetric(float64(r.start.Microseconds()), name+"-start-µs")
	}
	run("podsb-logger", func(dir string) *benchCtr { return startPodsbLogger(b, dir) })
	// The node logger: one process for all the containers, its memory
	// divided among them; and its cost with one container, to tell its
	// fixed cost from each container's.
	node := func(name string, k int) {
		saved := benchLoggersN
		benchLoggersN = k
		defer func() { benchLoggersN = saved }()
		n := NewNode(NodeOptions{Binary: loggerBin, Control: filepath.Join(b.TempDir(), "logger.sock")})
		defer n.Close()
		run(name, func(dir string) *benchCtr { return startNodeLogger(b, n, dir) })
	}
	node("node-1ctr", 1)
	node("node-10ctr", benchLoggers)
	if conmon == "" {
		b.Log("no conmon installed: podsb-logger alone")
	} else {
		rt := filepath.Join(b.TempDir(), "runtime")
		if err := os.WriteFile(rt, []byte(fakeOCIRuntime), 0o755); err != nil {
			b.Fatal(err)
		}
		run("conmon", func(dir string) *benchCtr { return startConmon(b, conmon, rt, dir) })
	}
	b.Logf("%d containers at once, mean per log writer:", benchLoggers)
	b.Logf("%-13s %9s %9s %11s %11s %9s", "", "idle RSS", "idle PSS", "10MiB RSS", "10MiB PSS", "start")
	for _, r := range results {
		b.Logf("%-13s %6d KiB %6d KiB %8d KiB %8d KiB %9v", r.name, r.idle.rss, r.idle.pss, r.after.rss, r.after.pss, r.start.Round(time.Microsecond))
	}
}
