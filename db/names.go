package db

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Every connection lockstep opens is named in pg_stat_activity, so that an
// observer finds a run's sessions and nothing of a run outlives it:
// a run's connections are lockstep/<run>/<name> (T1, T1@A, observer,
// control, W3, pool), and one-off connections outside any run are
// lockstep/<what> (check, reset, createdb). A run's prepared transactions
// take the same form as their global ids (lockstep/<run>/T1@A).
const appPrefix = "lockstep/"

// AppName is the application_name of a one-off connection outside any run.
func AppName(what string) string { return appPrefix + what }

// RunID names one run of lockstep on a server.
type RunID string

// NewRunID is a fresh random run id: six hex digits.
func NewRunID() RunID {
	b := make([]byte, 3)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return RunID(hex.EncodeToString(b))
}

// Prefix is what every name of the run begins with: lockstep/<run>/.
func (r RunID) Prefix() string { return appPrefix + string(r) + "/" }

// AppName is the name of the run's connection (or prepared transaction) name.
func (r RunID) AppName(name string) string { return r.Prefix() + name }

// Like is a LIKE pattern matching the run's names that begin with prefix;
// an empty prefix matches them all.
func (r RunID) Like(prefix string) string { return r.Prefix() + prefix + "%" }

// Name is what follows the run's prefix in s, and whether s is the run's.
func (r RunID) Name(s string) (string, bool) { return strings.CutPrefix(s, r.Prefix()) }
