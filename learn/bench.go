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
	d, err := env.DB.WithSchema(benchSchema(env.DB.Schema()))
	if err != nil {
		return nil, err
	}
	conn, err := d.Connect(ctx, db.AppName("learn-bench"))
	if err != nil {
		return nil, err
	}
	existed := true
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", d.Schema()).Scan(&existed); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("looking for schema %s: %w", d.Schema(), err)
	}
	defer func() {
		if !existed && d.Server() == nil {
			_ = ledger.DropSchema(context.WithoutCancel(ctx), conn, d.Schema(), ledger.DropOptions{Made: true})
		}
		conn.Close(context.WithoutCancel(ctx))
	}()
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

// benchSchema is where a lesson's bench runs: beside the lesson's schema.
func benchSchema(schema string) string {
	if schema == "" {
		return "lockstep_bench"
	}
	return schema + "_bench"
}
