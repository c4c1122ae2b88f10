package cache

// writebackChunk is how many bytes an ingest writes before it asks the
// kernel to start writing them to disk (see startWriteback).
const writebackChunk = 8 << 20
