package bench

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// parseGoBench reads `go test -bench -benchmem` output: for each
// benchmark line, its name and "ns/op, allocs/op".
func parseGoBench(tb testing.TB, path string) [][2]string {
	tb.Helper()
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatalf("bench: gateway benchmark results: %v", err)
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		var ns, allocs string
		for i := 1; i+1 < len(fields); i++ {
			switch fields[i+1] {
			case "ns/op":
				ns = fields[i]
			case "allocs/op":
				allocs = fields[i]
			}
		}
		if ns != "" {
			out = append(out, [2]string{fields[0], ns + " ns/op, " + or(allocs, "?") + " allocs/op"})
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("bench: gateway benchmark results: %v", err)
	}
	if len(out) == 0 {
		tb.Fatalf("bench: no benchmark lines in %s", path)
	}
	return out
}
