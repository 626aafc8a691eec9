package integration

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/podsb/podsb/internal/testenv"
)

// BenchmarkNetwork measures what the bridge network costs: create+rm with
// --network bridge against --network none (the bridge already up, held by
// another pod), interleaved; and a bulk TCP transfer into a pod through a
// published port against the same transfer straight to the pod's address.
// Results: docs/performance.md.
func BenchmarkNetwork(b *testing.B) {
	testenv.RequireRoot(b)
	e := newEnv(b)
	e.bridge = fmt.Sprintf("pb%06x", rand.IntN(1<<24))
	nargs := []string{"--network", "bridge", "--bridge", e.bridge, "--subnet", fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256))}
	port := 20000 + rand.IntN(20000)
	anchor := e.name()
	e.must(append(append([]string{"create"}, nargs...), "-p", fmt.Sprintf("%d:80", port), anchor)...)

	pod := func(mode string, extra []string) tool {
		return tool{
			name: "podsb-" + mode,
			op: func(tb testing.TB, _ int, _ any) any {
				n := e.name()
				e.must(append(append([]string{"create"}, extra...), n)...)
				return n
			},
			rm: func(tb testing.TB, _ int, n any) { e.must("rm", "-f", n.(string)) },
		}
	}
	rounds := benchRounds(b, 50)
	report(b, measure(b, rounds, []tool{pod("none", []string{"--network", "none"}), pod("bridge", nargs)}), "podsb-none/create")

	// A sink in the pod: a listener made on a thread that joined the pod's
	// network namespace (sockets keep the namespace they were made in).
	ln := listenIn(b, filepath.Join(e.root, anchor, "ns", "net"), ":80")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	direct := e.podIP(anchor) + ":80"
	published := fmt.Sprintf("127.0.0.1:%d", port)
	const size = 512 << 20
	var viaPort, viaIP []time.Duration
	for range 5 {
		viaIP = append(viaIP, transfer(b, direct, size))
		viaPort = append(viaPort, transfer(b, published, size))
	}
	gbps := func(d time.Duration) float64 { return float64(size) * 8 / d.Seconds() / 1e9 }
	dIP, dPort := gbps(median(viaIP)), gbps(median(viaPort))
	b.ReportMetric(dIP, "Gbit/s-direct")
	b.ReportMetric(dPort, "Gbit/s-published")
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n| bulk TCP into a pod (%d MiB, median of 5) | throughput | ratio to direct |\n| --- | ---: | ---: |\n", size>>20)
	fmt.Fprintf(&sb, "| straight to the pod's address | %.2f Gbit/s | 1.00 |\n", dIP)
	fmt.Fprintf(&sb, "| through the published port on 127.0.0.1 | %.2f Gbit/s | %.2f |\n", dPort, dPort/dIP)
	b.Log(sb.String())
}

// listenIn listens on addr inside the network namespace at path.
func listenIn(tb testing.TB, path, addr string) net.Listener {
	tb.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		ns, err := netns.GetFromPath(path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			ch <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp4", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	if r.err != nil {
		tb.Fatal(r.err)
	}
	return r.ln
}

// transfer sends size bytes to addr and returns how long it took.
func transfer(tb testing.TB, addr string, size int) time.Duration {
	tb.Helper()
	buf := make([]byte, 1<<20)
	start := time.Now()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		tb.Fatal(err)
	}
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			tb.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c) // until the sink closes: everything was read
	c.Close()
	return time.Since(start)
}
