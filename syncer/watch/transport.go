package watch

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"sync/atomic"
)

// Counter accumulates response-body bytes: Wire as received (compressed,
// when the server compressed the body), Decoded as handed to the reader.
// Headers and TLS framing are not counted. Safe for concurrent use.
type Counter struct {
	wire, decoded atomic.Int64
}

// Wire returns the body bytes received from the network.
func (c *Counter) Wire() int64 { return c.wire.Load() }

// Decoded returns the body bytes after decompression.
func (c *Counter) Decoded() int64 { return c.decoded.Load() }

type counterKey struct{}

// WithCounter returns a context whose requests, sent through a
// CountingTransport, add their response-body bytes to c.
func WithCounter(ctx context.Context, c *Counter) context.Context {
	return context.WithValue(ctx, counterKey{}, c)
}

func counterFrom(ctx context.Context) *Counter {
	c, _ := ctx.Value(counterKey{}).(*Counter)
	return c
}

// CountingTransport is an http.RoundTripper that counts response-body bytes
// per request (into the Counter of the request's context, see WithCounter)
// and in total. It asks for gzip itself and decompresses the body, as Go's
// transport does when a request carries no Accept-Encoding, so it can count
// both the compressed bytes that crossed the wire and the decoded bytes the
// JSON decoder read. A request that sets its own Accept-Encoding or Range
// is passed through and its body counted as it arrives, in both counters.
//
// The detector's public client should be built on one of these, and should
// be a client of its own: blocking queries then never occupy the
// connections used to execute prepared queries.
type CountingTransport struct {
	next  http.RoundTripper
	total Counter
}

// NewCountingTransport wraps next (http.DefaultTransport when nil).
func NewCountingTransport(next http.RoundTripper) *CountingTransport {
	if next == nil {
		next = http.DefaultTransport
	}
	return &CountingTransport{next: next}
}

// Total returns the bytes counted over all requests.
func (t *CountingTransport) Total() *Counter { return &t.total }

// RoundTrip sends req and wraps the response body for counting.
func (t *CountingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	askGzip := req.Header.Get("Accept-Encoding") == "" && req.Header.Get("Range") == "" && req.Method != http.MethodHead
	if askGzip {
		req = req.Clone(req.Context()) // a RoundTripper must not modify its request
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.Body == nil || resp.Body == http.NoBody {
		return resp, err
	}
	body := &countingBody{rc: resp.Body, req: counterFrom(req.Context()), total: &t.total}
	if askGzip && resp.Header.Get("Content-Encoding") == "gzip" {
		body.gzip = true
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
	}
	resp.Body = body
	return resp, nil
}

// countingBody counts what is read from rc (wire) and what its reader gets
// (decoded), decompressing on the way when gzip is set.
type countingBody struct {
	rc    io.ReadCloser
	req   *Counter // may be nil
	total *Counter
	gzip  bool
	zr    *gzip.Reader
	err   error // sticky error of a bad gzip header
}

func (b *countingBody) Read(p []byte) (int, error) {
	if !b.gzip {
		n, err := b.rc.Read(p)
		b.add(n, n)
		return n, err
	}
	if b.zr == nil && b.err == nil {
		// Opened lazily: gzip.NewReader reads the header, and the caller
		// may never read the body at all.
		b.zr, b.err = gzip.NewReader(wireReader{b})
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.zr.Read(p)
	b.add(0, n)
	return n, err
}

func (b *countingBody) add(wire, decoded int) {
	for _, c := range [...]*Counter{b.req, b.total} {
		if c != nil {
			c.wire.Add(int64(wire))
			c.decoded.Add(int64(decoded))
		}
	}
}

func (b *countingBody) Close() error {
	if b.zr != nil {
		_ = b.zr.Close()
	}
	return b.rc.Close()
}

// wireReader counts the compressed bytes the gzip reader pulls from the
// network.
type wireReader struct{ b *countingBody }

func (w wireReader) Read(p []byte) (int, error) {
	n, err := w.b.rc.Read(p)
	w.b.add(n, 0)
	return n, err
}
