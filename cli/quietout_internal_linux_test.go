package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQuietOutOnlyForFiles: spec's output is written with raw system calls
// only where a write returns at once — a file, /dev/null — and whole; a
// pipe (or a terminal), where a write may wait for the reader, is written
// as ever.
func TestQuietOutOnlyForFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := quietOut(f)
	if _, ok := w.(*quietFile); !ok {
		t.Fatalf("a file is written through %T; want the quiet writer", w)
	}
	want := strings.Repeat("step s1: SELECT 1;\n", 10000)
	for _, chunk := range []string{want[:7], want[7:]} {
		if n, err := w.Write([]byte(chunk)); err != nil || n != len(chunk) {
			t.Fatalf("Write: %d of %d bytes, %v", n, len(chunk), err)
		}
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != want {
		t.Fatalf("the file holds %d bytes (%v); want the %d written", len(got), err, len(want))
	}

	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if _, ok := quietOut(null).(*quietFile); !ok {
		t.Fatal("/dev/null is not written quietly")
	}

	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer pw.Close()
	if w := quietOut(pw); w != pw {
		t.Fatalf("a pipe is written through %T; want the file itself", w)
	}
	var sb strings.Builder
	if w := quietOut(&sb); w != &sb {
		t.Fatalf("a writer that is no file is wrapped in %T", w)
	}
}
