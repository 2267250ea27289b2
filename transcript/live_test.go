package transcript_test

import (
	"testing"

	"lockstep/transcript"
)

// A watch's filter in words, as the header and a recording say it.
func TestWatchConfigDescribe(t *testing.T) {
	for _, c := range []struct {
		cfg  transcript.WatchConfig
		want string
	}{
		{transcript.WatchConfig{}, "every client session"},
		{transcript.WatchConfig{AllDatabases: true}, "every client session, every database"},
		{transcript.WatchConfig{App: "psql", User: "shop", Pids: []int32{4711, 4712}}, "application_name LIKE 'psql', user shop, pid 4711,4712"},
		{transcript.WatchConfig{App: "lockstep/%", AllDatabases: true, ReadOnly: true}, "application_name LIKE 'lockstep/%', every database"},
	} {
		if got := c.cfg.Describe(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.cfg, got, c.want)
		}
	}
}
