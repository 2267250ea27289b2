package sim

// SetTestBeforeEmit sets a hook run between a statement's bookkeeping and
// the sending of its event (nil removes it).
func SetTestBeforeEmit(f func(Event)) { testBeforeEmit = f }
