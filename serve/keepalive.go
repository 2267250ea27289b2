package serve

import (
	"context"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// keepAlive asks the client, every interval, whether it is there (OpenSSH's
// keepalive@openssh.com, which every client answers, if only with a
// failure), and closes the connection when no answer came for
// keepAliveMisses intervals: a laptop closed or a network gone sends
// nothing, and TCP alone would notice only after many minutes. The
// connection's close ends the student's screen, which rolls their
// sessions back.
func keepAlive(ctx context.Context, conn *gossh.ServerConn, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		wait := time.NewTimer(interval * keepAliveMisses)
		select {
		case err := <-answered:
			wait.Stop()
			if err != nil {
				_ = conn.Close()
				return
			}
		case <-wait.C:
			_ = conn.Close()
			return
		case <-ctx.Done():
			wait.Stop()
			return
		}
	}
}
