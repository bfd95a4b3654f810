package config

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in               string
		scheme, hostport string
		err              string // fragment; "" for none
	}{
		{in: "127.0.0.1:8500", scheme: "http", hostport: "127.0.0.1:8500"},
		{in: "https://consul.example:8501", scheme: "https", hostport: "consul.example:8501"},
		{in: "https://consul.example", scheme: "https", hostport: "consul.example"},
		{in: "http://[::1]", scheme: "http", hostport: "[::1]"},
		{in: "[fd00::1]:8500", scheme: "http", hostport: "[fd00::1]:8500"},
		{in: "consul.example", err: "missing port in address"},
		{in: "::1", err: "too many colons"},
		{in: "https://::1", err: "too many colons"},
		{in: "https://[::1", err: "missing ']'"},
		{in: "https://[consul]", err: "brackets must hold an IPv6 address"},
		{in: "https://[127.0.0.1]", err: "brackets must hold an IPv6 address"},
		{in: "ftp://consul:21", err: "scheme must be http or https"},
		{in: "https://", err: "missing host"},
		{in: "https://:8501", err: "missing host"},
		{in: "http://user@consul:8500", err: "without user, path or query"},
		{in: "http://consul:8500/", err: "without user, path or query"},
		{in: "http://consul:8500?x=1", err: "without user, path or query"},
		{in: "consul:99999", err: "port must be a number from 0 to 65535"},
	}
	for _, tt := range tests {
		scheme, hostport, err := parseAddress(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("parseAddress(%q): %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("parseAddress(%q) error %v, want one containing %q", tt.in, err, tt.err)
		case tt.err == "" && (scheme != tt.scheme || hostport != tt.hostport):
			t.Errorf("parseAddress(%q) = %q, %q; want %q, %q", tt.in, scheme, hostport, tt.scheme, tt.hostport)
		}
	}
}

func TestSameServer(t *testing.T) {
	type addr struct{ scheme, hostport string }
	same := [][2]addr{
		{{"http", "127.0.0.1:8500"}, {"http", "localhost:8500"}},
		{{"http", "[::1]:8500"}, {"https", "LOCALHOST.:8500"}},
		{{"http", "[::ffff:127.0.0.1]:8500"}, {"http", "127.0.0.1:8500"}},
		{{"http", "[fd00:0::1]:8500"}, {"http", "[FD00::1]:8500"}},
		{{"http", "Consul.Example.:8500"}, {"http", "consul.example:8500"}},
		{{"https", "consul.example"}, {"http", "consul.example:443"}},
		{{"http", "consul.example"}, {"http", "consul.example:80"}},
		{{"https", "[::1]"}, {"http", "127.0.0.1:443"}},
		{{"http", "10.0.0.1:08500"}, {"http", "10.0.0.1:8500"}},
	}
	for _, p := range same {
		a, b := sameServer(p[0].scheme, p[0].hostport), sameServer(p[1].scheme, p[1].hostport)
		if a != b {
			t.Errorf("%v and %v: keys %q and %q differ, want one server", p[0], p[1], a, b)
		}
	}
	differ := [][2]addr{
		{{"http", "127.0.0.1:8500"}, {"http", "127.0.0.1:8501"}},
		{{"http", "127.0.0.2:8500"}, {"http", "127.0.0.1:8500"}},
		{{"http", "consul.example"}, {"https", "consul.example"}},
		{{"http", "consul-a:8500"}, {"http", "consul-b:8500"}},
		// Without DNS a name and an address are different servers.
		{{"http", "consul.example:8500"}, {"http", "10.0.0.1:8500"}},
	}
	for _, p := range differ {
		a, b := sameServer(p[0].scheme, p[0].hostport), sameServer(p[1].scheme, p[1].hostport)
		if a == b {
			t.Errorf("%v and %v: both key %q, want different servers", p[0], p[1], a)
		}
	}
}
