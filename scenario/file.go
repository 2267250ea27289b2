package scenario

import (
	"fmt"
	"io"
	"os"
)

// MaxFileSize bounds a spec file: PostgreSQL's own are a few kilobytes (the
// largest in its 15.3 suite, 87 KB). A larger file — an endless one such as
// /dev/zero among them — is refused without being read whole.
const MaxFileSize = 1 << 20

// ReadFile reads and parses the spec file at path.
func ReadFile(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the spec: %w", err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the spec: %w", err)
	}
	if len(src) > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d MB: a spec is a text file of a few kilobytes", path, MaxFileSize>>20)
	}
	return Parse(path, src)
}
