// Package onethread puts `lockstep spec` on one scheduler thread before the
// rest of the program initializes: imported by main, it has no dependency
// but the runtime and os, so its init runs before those of the libraries,
// whose goroutines and allocations on a second processor would each wake a
// second thread. Setting it later (cli's leanScheduler) costs a
// stop-the-world and leaves the threads already started; from here it
// saves ~0.6 ms of a spec's ~5 ms start (README, "Measured"), which a
// command run once per spec file adds up.
package onethread

import (
	"os"
	"runtime"
)

func init() {
	if len(os.Args) > 1 && os.Args[1] == "spec" && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
