package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gwsync/gwsync/syncer/admin"
	"github.com/gwsync/gwsync/syncer/admin/admintest"
)

// FuzzResyncRequest: whatever body, Content-Type and query a client sends
// to POST /v1/resync, the server answers with a known status and a JSON
// error, never a panic (a recovered panic would be a 500), and accepts
// only a scope that names a configured gateway for a service.
func FuzzResyncRequest(f *testing.F) {
	f.Add(`{"gateway":"gw1","service":"web","force":true}`, "application/json", "")
	f.Add(`{}`, "application/json; charset=utf-8", "")
	f.Add(`{"gateway":"gw1"} x`, "application/json", "")
	f.Add(`{"service":"web"}`, "application/json", "")
	f.Add(`gateway=gw1`, "application/x-www-form-urlencoded", "gateway=gw1&force=true")
	f.Add(`{"gateway":"nope","froce":1}`, "application/json", "force=maybe")
	f.Add(`{"gateway":"gw1","service":"a//b"}`, "text/plain", "")
	f.Add(`[{}]`, "application/json", "")
	srv := admin.New(admin.Options{Controller: admintest.NewFake("gw1", "gw2"), Token: "t", MaxRunning: 1 << 20})
	known := []string{"gw1", "gw2"}
	f.Fuzz(func(t *testing.T, body, contentType, query string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/resync", strings.NewReader(body))
		req.URL.RawQuery = query
		req.Host = "127.0.0.1:9310"
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusAccepted:
			var r admin.Resync
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("202 with an undecodable record: %v: %s", err, rec.Body)
			}
			if (r.Gateway != "" && !slices.Contains(known, r.Gateway)) || (r.Service != "" && r.Gateway == "") {
				t.Fatalf("accepted an impossible scope: %+v", r)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			var e admin.ErrorResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%d without a JSON error: %s", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("body %q, Content-Type %q, query %q: status %d %s", body, contentType, query, rec.Code, rec.Body)
		}
	})
}
