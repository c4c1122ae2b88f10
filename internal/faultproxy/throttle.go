package faultproxy

import (
	"net/http"
	"time"
)

// throttleChunk is the most a throttled response writes at once: 32 KiB is
// 4 ms at 8 MiB/s, so the rate is smooth at the scale of a test.
const throttleChunk = 32 << 10

// throttleWriter sends the body at rate bytes per second from its first
// write: before each chunk it sleeps until the bytes sent so far are due.
type throttleWriter struct {
	countingWriter
	rate   int64
	req    *http.Request
	closed <-chan struct{}
	start  time.Time
	sent   int64
}

func (w *throttleWriter) Write(b []byte) (int, error) {
	if w.start.IsZero() {
		w.start = time.Now()
	}
	var total int
	for len(b) > 0 {
		n := min(len(b), throttleChunk)
		due := w.start.Add(time.Duration(float64(w.sent) / float64(w.rate) * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-w.req.Context().Done():
				t.Stop()
				return total, w.req.Context().Err()
			case <-w.closed:
				t.Stop()
				return total, errInjected
			}
		}
		m, err := w.countingWriter.Write(b[:n])
		total += m
		w.sent += int64(m)
		if err != nil {
			return total, err
		}
		// Each chunk reaches the client now, not when a buffer fills.
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		b = b[n:]
	}
	return total, nil
}
