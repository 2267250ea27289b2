package learn

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/locks"
)

// ClassReporter keeps a connection whose name says where the student is
// in a lesson (locks.LearnerName), for lockstep class: the interface
// reports each step, and one goroutine renames the connection to the
// latest.
type ClassReporter struct {
	conn *pgx.Conn
	run  db.RunID
	ch   chan string
	done chan struct{}
}

// NewClassReporter connects as lockstep-learn/<run> ….
func NewClassReporter(ctx context.Context, d *db.Database) (*ClassReporter, error) {
	run := db.NewRunID()
	conn, err := d.Connect(ctx, locks.LearnerName(string(run), 0, 0, 0, 0, 0))
	if err != nil {
		return nil, err
	}
	r := &ClassReporter{conn: conn, run: run, ch: make(chan string, 64), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for name := range r.ch {
			// Only the latest counts.
			for more := true; more; {
				select {
				case n, ok := <-r.ch:
					if !ok {
						more = false
						break
					}
					name = n
				default:
					more = false
				}
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_, _ = r.conn.Exec(rctx, "SELECT set_config('application_name', $1, false)", name)
			cancel()
		}
	}()
	return r, nil
}

// Report says where the student is; it never blocks.
func (r *ClassReporter) Report(lesson, step, steps, right, asked int) {
	select {
	case r.ch <- locks.LearnerName(string(r.run), lesson, step, steps, right, asked):
	default:
	}
}

// Close ends the connection.
func (r *ClassReporter) Close() {
	close(r.ch)
	<-r.done
	r.conn.Close(context.Background())
}
