package admin_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/admin/admintest"
)

// logBuffer collects a logger's output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: w})
}

// fakeServer runs an admin server for ctrl on a loopback port and returns
// its base URL ("http://127.0.0.1:port").
func fakeServer(t *testing.T, ctrl admin.Controller, adjust func(*admin.Options)) string {
	t.Helper()
	opts := admin.Options{Controller: ctrl, Address: "127.0.0.1:0",
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: io.Discard})}
	if adjust != nil {
		adjust(&opts)
	}
	return "http://" + admintest.RunServer(t, admin.New(opts))
}

// request is one HTTP request of a test, with its headers.
type request struct {
	method, path, body string
	header             map[string]string
	host               string
}

// send makes the request and returns the answer's status, headers and body.
func send(t *testing.T, base string, r request) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, base+r.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.host != "" {
		req.Host = r.host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// jsonHeader is the header of a well-formed mutating request.
var jsonHeader = map[string]string{"Content-Type": "application/json"}
