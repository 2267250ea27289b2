package load

import "context"

// BenchWithGoroutines is Bench with a goroutine per worker, the way
// connections that cannot be driven from one goroutine (TLS) run.
func BenchWithGoroutines(ctx context.Context, cfg BenchConfig) (BenchResult, error) {
	cfg.goroutines = true
	return Bench(ctx, cfg)
}

// BenchPipelined is Bench with Pipeline set.
func BenchPipelined(ctx context.Context, cfg BenchConfig) (BenchResult, error) {
	cfg.Pipeline = true
	return Bench(ctx, cfg)
}

// DecodeRow is the driven bench's DataRow decoder.
var DecodeRow = decodeRow
