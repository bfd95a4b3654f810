package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, a failure
// is always an *Error with at least one positioned problem, and a success
// is a usable configuration.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.hcl"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed configs in testdata: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(pub + gw))
	f.Add([]byte(pub + gw + "admin {\n  address = \n}\n"))
	f.Add([]byte("gateway {}\npublic { token = \"a\"\ntoken_env = \"X\" }\n"))
	f.Add([]byte("public { address = \"[::1]:8500\" tls { } }\n"))
	f.Add([]byte("query { failover { datacenters = [1, \"DC\"] } }\n"))
	f.Add([]byte("${a}\n"))
	f.Add([]byte{})

	// The seeds' relative token files resolve next to the fuzzed file, so
	// the full example reaches the success path too.
	dir := f.TempDir()
	tokens, _ := filepath.Glob(filepath.Join("testdata", "*.token"))
	for _, tok := range tokens {
		b, err := os.ReadFile(tok)
		if err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(tok)), b, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	file := filepath.Join(dir, "fuzz.hcl")
	env := envMap(map[string]string{"EDGE_GZ_TOKEN": "t", "X": "x"})
	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, err := Parse(src, file, env)
		if err != nil {
			if cfg != nil {
				t.Errorf("Parse returned both a config and an error")
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("error %T %q is not a *config.Error", err, err)
			}
			if len(cerr.Problems) == 0 {
				t.Fatalf("*Error without problems")
			}
			for i, p := range cerr.Problems {
				if p.Line < 1 || p.Column < 1 || p.Msg == "" {
					t.Errorf("problem %d without a position or message: %+v", i, p)
				}
				if i > 0 {
					q := cerr.Problems[i-1]
					if p.Line < q.Line || (p.Line == q.Line && p.Column < q.Column) {
						t.Errorf("problems not sorted by position: %v before %v", q, p)
					}
				}
			}
			return
		}
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		if cfg.Public.Address == "" || len(cfg.Gateways) == 0 {
			t.Errorf("accepted a config without public address or gateways: %+v", cfg)
		}
		for _, g := range cfg.Gateways {
			if g.Dedicated.Address == "" || g.SourceDatacenter == "" {
				t.Errorf("accepted gateway %+v", g)
			}
			if _, err := ParseSchedule(g.Schedule); err != nil {
				t.Errorf("accepted schedule %q that does not parse: %v", g.Schedule, err)
			}
		}
		if f := cfg.Safety.MaxDeleteFraction; !(f > 0 && f <= 1) {
			t.Errorf("accepted max_delete_fraction %v", f)
		}
	})
}
