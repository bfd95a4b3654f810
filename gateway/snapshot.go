package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Snapshot format. The magic tells a gwsync snapshot from any other file;
// the version lets a later format be refused cleanly by an older resolver.
const (
	snapshotMagic   = "gwsync-resolver-snapshot"
	snapshotVersion = 1
)

type snapshotFile struct {
	Magic     string                     `json:"magic"`
	Version   int                        `json:"version"`
	Gateway   string                     `json:"gateway"`
	WrittenAt time.Time                  `json:"written_at"`
	Services  map[string]snapshotService `json:"services"`
}

type snapshotService struct {
	FetchedAt time.Time  `json:"fetched_at"`
	Instances []Instance `json:"instances"`
}

var errSnapshotTooLarge = errors.New("snapshot exceeds size limit")

// encodeSnapshot renders the answers worth keeping: only answers with
// instances, since an empty answer from disk could never be served anyway.
// It fails rather than write a file larger than maxBytes.
func encodeSnapshot(gateway string, writtenAt time.Time, answers map[string]*Answer, maxBytes int) ([]byte, error) {
	f := snapshotFile{
		Magic:     snapshotMagic,
		Version:   snapshotVersion,
		Gateway:   gateway,
		WrittenAt: writtenAt.UTC(),
		Services:  make(map[string]snapshotService, len(answers)),
	}
	for name, a := range answers {
		if a == nil || len(a.Instances) == 0 {
			continue
		}
		f.Services[name] = snapshotService{FetchedAt: a.FetchedAt.UTC(), Instances: a.Instances}
	}
	b, err := json.Marshal(&f)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot: %w", err)
	}
	if len(b) > maxBytes {
		return nil, fmt.Errorf("encode snapshot: %d bytes for %d services: %w (%d bytes)", len(b), len(f.Services), errSnapshotTooLarge, maxBytes)
	}
	return b, nil
}

// decodeSnapshot parses and validates a snapshot of gateway. Anything that
// is not exactly a snapshot this resolver wrote is an error.
func decodeSnapshot(b []byte, gateway string, maxBytes int) (map[string]snapshotService, error) {
	if len(b) > maxBytes {
		return nil, fmt.Errorf("decode snapshot: %w (%d bytes)", errSnapshotTooLarge, maxBytes)
	}
	var f snapshotFile
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("decode snapshot: trailing data after the document")
	}
	if f.Magic != snapshotMagic {
		return nil, fmt.Errorf("decode snapshot: not a gwsync resolver snapshot (magic %q)", truncate(f.Magic, 40))
	}
	if f.Version != snapshotVersion {
		return nil, fmt.Errorf("decode snapshot: unsupported version %d (want %d)", f.Version, snapshotVersion)
	}
	if f.Gateway != gateway {
		return nil, fmt.Errorf("decode snapshot: written for gateway %q, not %q", truncate(f.Gateway, 64), gateway)
	}
	for name, s := range f.Services {
		if name == "" {
			return nil, errors.New("decode snapshot: service with an empty name")
		}
		if len(s.Instances) == 0 {
			return nil, fmt.Errorf("decode snapshot: service %q has no instances", truncate(name, 64))
		}
		for _, in := range s.Instances {
			if in.Address == "" || in.Port < 0 || in.Port > 65535 {
				return nil, fmt.Errorf("decode snapshot: service %q has an instance without a valid address", truncate(name, 64))
			}
		}
	}
	if f.Services == nil {
		f.Services = map[string]snapshotService{}
	}
	return f.Services, nil
}

// readSnapshot reads at most maxBytes+1 bytes so a huge foreign file cannot
// exhaust memory. A missing file is (nil, nil): a first start.
func readSnapshot(path, gateway string, maxBytes int) (map[string]snapshotService, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	return decodeSnapshot(b, gateway, maxBytes)
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced, then renamed over path, so a crash leaves either the
// old file or the new one, never a torn one.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if d, derr := os.Open(dir); derr == nil { // persist the rename; best effort
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// snapshotServices lists a snapshot's services sorted, for logs and tests.
func snapshotServices(m map[string]snapshotService) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
