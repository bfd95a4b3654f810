package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client calls a controller's admin API.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// NewClient returns a client for the admin API at addr ("host:port" or an
// http(s) URL). token, if not empty, is sent as a bearer token. hc nil
// means a client with no timeout of its own: give every call a context
// with a deadline.
func NewClient(addr, token string, hc *http.Client) (*Client, error) {
	if addr == "" {
		return nil, errors.New("no admin address")
	}
	raw := addr
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %w", addr, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("admin address %q: want host:port or http(s)://host:port", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, token: token, http: hc}, nil
}

// At returns a client for another replica's admin API at addr (a 409
// names it), with the same token and HTTP client; an addr without a
// scheme takes this client's.
func (c *Client) At(addr string) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = c.base.Scheme + "://" + addr
	}
	return NewClient(addr, c.token, c.http)
}

// Addr returns the base URL the client calls.
func (c *Client) Addr() string { return c.base.String() }

// APIError is a non-2xx answer from the admin API.
type APIError struct {
	StatusCode    int
	Message       string
	KnownGateways []string
	// Owner is set on a 409: the replica that writes the gateway.
	Owner *Owner
}

func (e *APIError) Error() string {
	return fmt.Sprintf("controller answered %d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// UnreachableError: the admin API could not be reached at all.
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the gwsync controller at %s: %v", e.Addr, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (StatusResponse, error) {
	var out StatusResponse
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &out)
	return out, err
}

// Resync starts a forced resync and returns its record as accepted.
func (c *Client) Resync(ctx context.Context, req ResyncRequest) (Resync, error) {
	var out Resync
	err := c.do(ctx, http.MethodPost, "/v1/resync", nil, req, &out)
	return out, err
}

// ResyncStatus returns the record of the resync with id.
func (c *Client) ResyncStatus(ctx context.Context, id string) (Resync, error) {
	var out Resync
	err := c.do(ctx, http.MethodGet, "/v1/resync/"+url.PathEscape(id), nil, nil, &out)
	return out, err
}

// Diff returns what a sync of gateway (or of one service of it) would
// change now; force shows what a forced resync would do.
func (c *Client) Diff(ctx context.Context, gateway, service string, force bool) (Result, error) {
	q := url.Values{"gateway": {gateway}}
	if service != "" {
		q.Set("service", service)
	}
	if force {
		q.Set("force", strconv.FormatBool(force))
	}
	var out Result
	err := c.do(ctx, http.MethodGet, "/v1/diff", q, nil, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &UnreachableError{Addr: c.Addr(), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer from %s: %w", c.Addr(), err)
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{StatusCode: resp.StatusCode}
		var er ErrorResponse
		if json.Unmarshal(data, &er) == nil && er.Error != "" {
			e.Message, e.KnownGateways, e.Owner = er.Error, er.KnownGateways, er.Owner
		} else {
			e.Message = strings.TrimSpace(string(data))
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer from %s%s: %w", c.Addr(), path, err)
	}
	return nil
}
