//go:build !linux

package load

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// driver: driving every connection from one goroutine needs epoll(7),
// which is Linux's; elsewhere the bench runs a goroutine per worker
// (runWorkers), as it does for TLS connections.
func driver(context.Context, BenchConfig, []*pgx.Conn) (func(time.Time) (Tally, []time.Duration, error), func(), error) {
	return nil, func() {}, nil
}
