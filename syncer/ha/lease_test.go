package ha

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestLease_CheckOpAndEnd(t *testing.T) {
	l := newLease("edge-a", "sess-1", "gwsync/gateways/edge-a/lock", time.Now())
	op := l.CheckOp()
	if op.KV == nil || op.KV.Verb != api.KVCheckSession || op.KV.Key != l.Key || op.KV.Session != "sess-1" {
		t.Fatalf("CheckOp = %+v, want check-session on the lock key with the lease's session", op.KV)
	}
	if l.Err() != nil {
		t.Fatalf("fresh lease: Err = %v", l.Err())
	}
	l.end(ErrFenced)
	l.end(ErrShutdown) // the first cause stays
	<-l.Done()
	if !errors.Is(l.Err(), ErrFenced) || !errors.Is(context.Cause(l.Context()), ErrFenced) {
		t.Errorf("Err = %v, want %v", l.Err(), ErrFenced)
	}
}

func TestIsFenceError(t *testing.T) {
	key := "gwsync/gateways/edge-a/lock"
	tests := []struct {
		name string
		resp *api.TxnResponse
		want bool
	}{
		{name: "nil response", resp: nil},
		{name: "no errors", resp: &api.TxnResponse{}},
		{name: "held by another session", want: true, resp: &api.TxnResponse{Errors: api.TxnErrors{
			{OpIndex: 0, What: `failed session check for key "` + key + `", current session "b" != "a"`}}}},
		{name: "lock key gone", want: true, resp: &api.TxnResponse{Errors: api.TxnErrors{
			{OpIndex: 0, What: `failed to check session, key "` + key + `" doesn't exist`}}}},
		{name: "fence and another op both fail", want: true, resp: &api.TxnResponse{Errors: api.TxnErrors{
			{OpIndex: 0, What: `failed session check for key "` + key + `", current session "" != "a"`},
			{OpIndex: 3, What: "failed to set node: bad"}}}},
		{name: "another op fails, fence passed", resp: &api.TxnResponse{Errors: api.TxnErrors{
			{OpIndex: 2, What: `failed to delete key "x", index is stale`}}}},
		{name: "session check failure not at the fence's place", resp: &api.TxnResponse{Errors: api.TxnErrors{
			{OpIndex: 1, What: `failed session check for key "other", current session "" != "a"`}}}},
		{name: "nil error entry", resp: &api.TxnResponse{Errors: api.TxnErrors{nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsFenceError(tt.resp); got != tt.want {
				t.Errorf("IsFenceError = %v, want %v", got, tt.want)
			}
		})
	}
}
