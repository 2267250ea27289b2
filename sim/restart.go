package sim

import "context"

// ResultRecorder is a Script that takes each statement's whole results,
// their columns with their rows, rather than the first row alone: an
// answer whose \gset names its values after the columns.
type ResultRecorder interface {
	RecordResults(i int, res []Result) error
}

// Restart starts session i's script again from its first statement, as an
// application's retry loop starts a transfer again after a deadlock or a
// serialization failure: the session's teardown runs and whatever
// transaction it has open is rolled back, then its script rewinds and its
// setup runs again. The session must not be busy.
func (e *Engine) Restart(ctx context.Context, i int) error {
	e.mu.Lock()
	s, err := e.ready(i)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.control(ctx, ctlTeardown); err != nil {
		return err
	}
	if err := s.control(ctx, ctlSetup); err != nil {
		return err
	}
	e.changed() // its locks went with the rollback
	return nil
}

// ScriptOf is session i's script as it stands: what its statements have
// read so far. The caller reads it only while the session runs nothing.
func (e *Engine) ScriptOf(i int) Script {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sessions[i].script
}
