package learn

import (
	"context"
	"fmt"
	"time"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/load"
)

// RunBench measures a bench action's strategies one after the other, each
// on a fresh ledger in a schema of its own beside the lesson's (the
// lesson's run keeps its claim on its own), and returns each one's
// transfers a second. A schema it made is dropped afterwards.
func RunBench(ctx context.Context, env Env, b *BenchSpec) (map[string]float64, error) {
	d, done, err := SideSchema(ctx, env.DB, "bench")
	if err != nil {
		return nil, err
	}
	defer done()
	out := map[string]float64{}
	for _, name := range b.Strategies {
		s, err := ledger.Lookup(name)
		if err != nil {
			return nil, err
		}
		res, err := load.Bench(ctx, load.BenchConfig{DB: d, Ledger: env.Ledger, Strategy: s, Workers: b.Workers,
			Accounts: b.Accounts, Duration: time.Duration(b.Seconds) * time.Second})
		if err != nil {
			return nil, fmt.Errorf("bench %s: %w", name, err)
		}
		out[name] = res.Throughput
	}
	return out, nil
}

// SideSchema is a schema beside d's, named <schema>_<what> (lockstep_<what>
// when d has none), for work that must not touch the schema a live run
// claims: a lesson's bench, a grade from the interface. done drops it
// when it was made here, on a server lockstep did not start (the
// throwaway server goes whole).
func SideSchema(ctx context.Context, d *db.Database, what string) (*db.Database, func(), error) {
	name := "lockstep_" + what
	if d.Schema() != "" {
		name = d.Schema() + "_" + what
	}
	side, err := d.WithSchema(name)
	if err != nil {
		return nil, nil, err
	}
	conn, err := side.Connect(ctx, db.AppName("learn-"+what))
	if err != nil {
		return nil, nil, err
	}
	existed := true
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", name).Scan(&existed); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, fmt.Errorf("looking for schema %s: %w", name, err)
	}
	done := func() {
		if !existed && side.Server() == nil {
			_ = ledger.DropSchema(context.WithoutCancel(ctx), conn, name, ledger.DropOptions{Made: true})
		}
		conn.Close(context.WithoutCancel(ctx))
	}
	return side, done, nil
}
