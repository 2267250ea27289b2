//go:build unix

package dbtest

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lockstep/db"
)

// A test server that exits before the tests end says so at once, with the
// end of its log.
func TestAServerThatExitsEarlyShowsItsLog(t *testing.T) {
	d, err := db.Open(context.Background(), db.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var out lockedBuffer
	stop := watchServer(d, &out)
	defer stop()
	if err := syscall.Kill(d.Server().Pid(), syscall.SIGTERM); err != nil { // a smart shutdown: it logs why
		t.Fatal(err)
	}
	for guard := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "shut down") && time.Now().Before(guard); {
		time.Sleep(10 * time.Millisecond)
	}
	if s := out.String(); !strings.Contains(s, "dbtest: the test server exited during the tests") || !strings.Contains(s, "database system is shut down") {
		t.Errorf("said:\n%s", s)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
