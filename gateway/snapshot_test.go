package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleAnswers() map[string]*Answer {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return map[string]*Answer{
		"web": {Service: "web", Source: SourceLocal, FetchedAt: at, Instances: []Instance{
			{ID: "web-1", Node: "n1", Address: "10.0.0.1", Port: 80, Tags: []string{"v1"}, Meta: map[string]string{"k": "v"}, Weights: Weights{Passing: 3, Warning: 1}, SourceDC: "dc1"},
		}},
		"api":   {Service: "api", Source: SourcePublic, FetchedAt: at, Instances: []Instance{{ID: "api-1", Address: "10.0.0.2", Port: 81, SourceDC: "dc2"}}},
		"empty": {Service: "empty", Source: SourceLocal, FetchedAt: at},
	}
}

func TestSnapshot_RoundTrip(t *testing.T) {
	in := sampleAnswers()
	b, err := encodeSnapshot("edge", time.Now(), in, DefaultMaxSnapshotBytes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSnapshot(b, "edge", DefaultMaxSnapshotBytes)
	if err != nil {
		t.Fatal(err)
	}
	if names := snapshotServices(got); !reflect.DeepEqual(names, []string{"api", "web"}) {
		t.Fatalf("services %v, want [api web] (empty answers are not kept)", names)
	}
	for name, s := range got {
		if !reflect.DeepEqual(s.Instances, in[name].Instances) || !s.FetchedAt.Equal(in[name].FetchedAt) {
			t.Errorf("%s: got %+v, want %+v", name, s, in[name])
		}
	}
}

func TestSnapshot_Decode(t *testing.T) {
	valid, err := encodeSnapshot("edge", time.Now(), sampleAnswers(), DefaultMaxSnapshotBytes)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		data    string
		gateway string
		max     int
		wantErr string
	}{
		{name: "valid", data: string(valid), gateway: "edge", max: DefaultMaxSnapshotBytes},
		{name: "other gateway", data: string(valid), gateway: "other", max: DefaultMaxSnapshotBytes, wantErr: "written for gateway"},
		{name: "too large", data: string(valid), gateway: "edge", max: 10, wantErr: "size limit"},
		{name: "garbage", data: "\x00\x01garbage", gateway: "edge", max: 1 << 20, wantErr: "decode snapshot"},
		{name: "truncated", data: string(valid[:len(valid)/2]), gateway: "edge", max: 1 << 20, wantErr: "decode snapshot"},
		{name: "foreign json", data: `{"hello":"world"}`, gateway: "edge", max: 1 << 20, wantErr: "not a gwsync resolver snapshot"},
		{name: "future version", data: `{"magic":"gwsync-resolver-snapshot","version":2,"gateway":"edge"}`, gateway: "edge", max: 1 << 20, wantErr: "unsupported version"},
		{name: "trailing data", data: string(valid) + `{}`, gateway: "edge", max: 1 << 20, wantErr: "trailing data"},
		{name: "instance without address", data: `{"magic":"gwsync-resolver-snapshot","version":1,"gateway":"edge","services":{"web":{"instances":[{"port":80}]}}}`, gateway: "edge", max: 1 << 20, wantErr: "valid address"},
		{name: "service without instances", data: `{"magic":"gwsync-resolver-snapshot","version":1,"gateway":"edge","services":{"web":{"instances":[]}}}`, gateway: "edge", max: 1 << 20, wantErr: "no instances"},
		{name: "no services", data: `{"magic":"gwsync-resolver-snapshot","version":1,"gateway":"edge"}`, gateway: "edge", max: 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeSnapshot([]byte(tt.data), tt.gateway, tt.max)
			if tt.wantErr == "" {
				if err != nil || got == nil {
					t.Fatalf("decode: %v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestSnapshot_EncodeTooLarge(t *testing.T) {
	_, err := encodeSnapshot("edge", time.Now(), sampleAnswers(), 50)
	if !errors.Is(err, errSnapshotTooLarge) {
		t.Fatalf("err = %v, want errSnapshotTooLarge", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "snap.json")
	for _, content := range []string{"first", "second"} {
		if err := writeFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("read back %q, %v; want %q", b, err, content)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Fatalf("directory holds %d files, want only the snapshot (no temp files left)", len(ents))
	}
	if err := writeFileAtomic(filepath.Join(dir, "missing", "x"), []byte("x")); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestReadSnapshot_Missing(t *testing.T) {
	got, err := readSnapshot(filepath.Join(t.TempDir(), "none"), "edge", 1<<20)
	if got != nil || err != nil {
		t.Fatalf("readSnapshot(missing) = %v, %v; want nil, nil", got, err)
	}
}

// FuzzDecodeSnapshot: no input may panic the decoder, and whatever it
// accepts holds only servable answers and encodes back to an equal snapshot.
func FuzzDecodeSnapshot(f *testing.F) {
	valid, _ := encodeSnapshot("edge", time.Now(), sampleAnswers(), DefaultMaxSnapshotBytes)
	f.Add(valid)
	f.Add([]byte(`{"magic":"gwsync-resolver-snapshot","version":1,"gateway":"edge","services":{}}`))
	f.Add([]byte(`{"magic":"gwsync-resolver-snapshot","version":1,"gateway":"edge","services":{"a":{"instances":[{"address":"x","port":1}]}}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeSnapshot(data, "edge", 1<<16)
		if err != nil {
			return
		}
		answers := map[string]*Answer{}
		for name, s := range got {
			if name == "" || len(s.Instances) == 0 {
				t.Fatalf("accepted unservable service %q", name)
			}
			for _, in := range s.Instances {
				if in.Address == "" || in.Port < 0 || in.Port > 65535 {
					t.Fatalf("accepted invalid instance %+v", in)
				}
			}
			answers[name] = &Answer{Service: name, Instances: s.Instances, FetchedAt: s.FetchedAt}
		}
		b, err := encodeSnapshot("edge", time.Now(), answers, 1<<20)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := decodeSnapshot(b, "edge", 1<<20)
		if err != nil {
			t.Fatalf("decode of re-encoded snapshot: %v", err)
		}
		if len(again) != len(got) {
			t.Fatalf("re-decoded %d services, want %d", len(again), len(got))
		}
	})
}
