package bench

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// meter is a TCP relay that counts the bytes crossing it: placed between
// the counting harness.Proxy and the public server, it measures what
// gwsync's public traffic costs on the wire (HTTP headers included, bodies
// as sent: gzip-compressed when the client asked for it, as Go clients
// do).
type meter struct {
	ln     net.Listener
	target string
	// up: client to server (requests); down: server to client (answers).
	up, down atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// newMeter starts a relay on 127.0.0.1:0 to target; it stops through
// tb.Cleanup (open connections are cut).
func newMeter(tb testing.TB, target string) *meter {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("bench: meter listen: %v", err)
	}
	m := &meter{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	m.wg.Go(m.accept)
	tb.Cleanup(m.close)
	return m
}

// Addr is the relay's address.
func (m *meter) Addr() string { return m.ln.Addr().String() }

// Bytes returns the bytes relayed each way since the start or the last
// Reset.
func (m *meter) Bytes() (up, down int64) { return m.up.Load(), m.down.Load() }

// Reset restarts the counts.
func (m *meter) Reset() { m.up.Store(0); m.down.Store(0) }

func (m *meter) accept() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		if !m.track(c) {
			_ = c.Close()
			return
		}
		m.wg.Go(func() { m.relay(c) })
	}
}

func (m *meter) track(cs ...net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	for _, c := range cs {
		m.conns[c] = struct{}{}
	}
	return true
}

func (m *meter) untrack(cs ...net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range cs {
		delete(m.conns, c)
	}
}

// relay copies both ways until either side closes, then closes both.
func (m *meter) relay(client net.Conn) {
	defer m.untrack(client)
	defer client.Close()
	server, err := net.DialTimeout("tcp", m.target, 5*time.Second)
	if err != nil {
		return
	}
	if !m.track(server) {
		_ = server.Close()
		return
	}
	defer m.untrack(server)
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { copyCounting(server, client, &m.up); done <- struct{}{} }()
	go func() { copyCounting(client, server, &m.down); done <- struct{}{} }()
	<-done // one side ended: end the other, then wait for its copy
	_ = client.Close()
	_ = server.Close()
	<-done
}

// copyCounting copies src to dst, adding every chunk to n as it passes
// (a blocking query's answer counts when it arrives, not when its
// connection closes).
func copyCounting(dst io.Writer, src io.Reader, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(int64(k))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF or a closed connection: either way, done
			return
		}
	}
}

func (m *meter) close() {
	m.mu.Lock()
	m.closed = true
	for c := range m.conns {
		_ = c.Close()
	}
	m.mu.Unlock()
	_ = m.ln.Close()
	m.wg.Wait()
}
