package nsenter

import (
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The threads that join a pod's namespaces are never the main thread,
// which the runtime cannot end: it would stay, wedged, in the pod's
// namespaces, and /proc/self would show them to the whole program. With
// the main goroutine free to move (as in a test binary, whose main
// goroutine waits while tests run), some of these goroutines start on the
// main thread; none may run f there.
func TestNeverOnMainThread(t *testing.T) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	onMain := 0
	for range 500 {
		wg.Add(1)
		onFreshThread(func() {
			defer wg.Done()
			if unix.Gettid() == unix.Getpid() {
				mu.Lock()
				onMain++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if onMain > 0 {
		t.Errorf("%d of 500 ran on the main thread", onMain)
	}
}
