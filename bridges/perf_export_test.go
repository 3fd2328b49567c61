package bridges

// SetFastIQ turns the read-loop answers to ping and disco#info (fastIQ)
// on or off, for benchmarks that compare them with the shard path.
func SetFastIQ(on bool) { fastIQOff.Store(!on) }
