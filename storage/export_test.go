package storage

// PipelineCounts returns how many PostgreSQL batches w committed pipelined
// and how many fell back to running sequentially.
func PipelineCounts(w *CertWriter) (pipelined, diverged int64) {
	return w.pipelined.Load(), w.diverged.Load()
}
