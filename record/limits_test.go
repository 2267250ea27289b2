package record

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

// A file beyond the size limit once unpacked — here a small compressed one
// of many notes — is refused, not read whole.
func TestReadStopsAtTheSizeLimit(t *testing.T) {
	var plain strings.Builder
	plain.WriteString(`{"format":"lockstep-recording","version":2,"run":{"sessions":2}}` + "\n")
	for range 10000 {
		plain.WriteString(`{"t":1,"note":"` + strings.Repeat("z", 100) + `"}` + "\n")
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(plain.String()))
	zw.Close()
	if gz.Len() > 10000 {
		t.Fatalf("%d bytes compressed", gz.Len())
	}
	if _, err := read(bytes.NewReader(gz.Bytes()), int64(plain.Len())+1, MaxLine); err != nil {
		t.Fatalf("within the limit: %v", err)
	}
	_, err := read(bytes.NewReader(gz.Bytes()), 500_000, MaxLine)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "(unpacked), at line ") {
		t.Errorf("beyond the limit: %v", err)
	}
}
