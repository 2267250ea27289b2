//go:build !linux

package cli

import "io"

// quietOut is w: only Linux's files are written quietly (quietout_linux.go).
func quietOut(w io.Writer) io.Writer { return w }
