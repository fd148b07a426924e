package daemon

// FlushTokenUses writes the token uses noted so far back to the storage
// now, instead of at the next tick.
func (s *Server) FlushTokenUses() { s.flushTokenUses() }
