package fetcher

import (
	"context"
	"io"

	"golang.org/x/time/rate"
)

// rateBurst is the most bytes one read may take from a pull's rate limiter
// at once: small enough to keep the rate smooth, large enough to keep reads
// efficient.
const rateBurst = 256 << 10

// newLimiter returns the limiter shared by all downloads of one pull, or nil
// when pulls are not capped.
func (f *Fetcher) newLimiter() *rate.Limiter {
	if f.opts.MaxBytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(f.opts.MaxBytesPerSecond), int(min(f.opts.MaxBytesPerSecond, rateBurst)))
}

// limitedReader takes each read's bytes from a shared limiter, so that the
// connections of one pull together stay under its rate.
type limitedReader struct {
	ctx context.Context
	r   io.Reader
	lim *rate.Limiter
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if len(p) > l.lim.Burst() {
		p = p[:l.lim.Burst()]
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if werr := l.lim.WaitN(l.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}
