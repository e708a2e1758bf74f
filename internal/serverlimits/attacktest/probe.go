package attacktest

import (
	"fmt"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"
)

// Probe watches the process's goroutines and heap during an attack: its baseline
// when started, the peaks sampled every few milliseconds, and whether both come back.
type Probe struct {
	BaseGoroutines int
	BaseHeap       uint64

	mu        sync.Mutex
	peakG     int
	peakHeap  uint64
	stop, end chan struct{}
}

// StartProbe takes the baseline (after a GC) and starts sampling.
func StartProbe() *Probe {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p := &Probe{BaseGoroutines: runtime.NumGoroutine(), BaseHeap: ms.HeapInuse,
		stop: make(chan struct{}), end: make(chan struct{})}
	go p.sample()
	return p
}

func (p *Probe) sample() {
	defer close(p.end)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var ms runtime.MemStats
	for {
		g := runtime.NumGoroutine()
		runtime.ReadMemStats(&ms)
		p.mu.Lock()
		p.peakG, p.peakHeap = max(p.peakG, g), max(p.peakHeap, ms.HeapInuse)
		p.mu.Unlock()
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
	}
}

// Peaks returns the highest goroutine count and heap in use seen so far.
func (p *Probe) Peaks() (goroutines int, heap uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakG, p.peakHeap
}

// Settle stops sampling and waits, polling, up to timeout for the goroutines to
// come back within slackG of the baseline and the heap (after a GC) within
// slackHeap bytes of it. It returns what it saw and an error if they did not.
func (p *Probe) Settle(timeout time.Duration, slackG int, slackHeap uint64) (goroutines int, heap uint64, err error) {
	close(p.stop)
	<-p.end
	deadline := time.Now().Add(timeout)
	for {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		goroutines, heap = runtime.NumGoroutine(), ms.HeapInuse
		if goroutines <= p.BaseGoroutines+slackG && heap <= p.BaseHeap+slackHeap {
			return goroutines, heap, nil
		}
		if time.Now().After(deadline) {
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			return goroutines, heap, fmt.Errorf("after %v: %d goroutines (baseline %d, slack %d), heap %d KiB (baseline %d KiB, slack %d KiB); goroutines:\n%.6000s",
				timeout, goroutines, p.BaseGoroutines, slackG, heap>>10, p.BaseHeap>>10, slackHeap>>10, stacks.String())
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// String reports the baseline and peaks.
func (p *Probe) String() string {
	g, h := p.Peaks()
	return fmt.Sprintf("goroutines %d -> peak %d, heap %d KiB -> peak %d KiB", p.BaseGoroutines, g, p.BaseHeap>>10, h>>10)
}
