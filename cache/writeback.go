package cache

// writebackChunk is how many bytes an ingest writes before it asks the
// kernel to start writing them to disk (see startWriteback).
const writebackChunk = 8 << 20

// startWriteback starts the writeback of bytes [off, off+n) of the ingest
// file, unless the cache does not sync blobs: then nothing waits for the
// disk, and the kernel writes back when it sees fit.
func (w *ingestFile) startWriteback(off, n int64) {
	if !w.c.noSync {
		startWriteback(w.f, off, n)
	}
}
