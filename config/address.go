package config

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// parseAddress splits a cluster address, "host:port" or
// "http[s]://host[:port]", into its scheme ("http" when none is written)
// and the host:port part. Only with a scheme may the port be left out: the
// scheme's default port (80, 443) then applies, as for any URL.
func parseAddress(addr string) (scheme, hostport string, err error) {
	scheme, hostport, hasScheme := strings.Cut(addr, "://")
	if !hasScheme {
		scheme, hostport = "http", addr
	} else if scheme != "http" && scheme != "https" {
		return "http", hostport, errors.New("scheme must be http or https")
	}
	if strings.ContainsAny(hostport, "/?#@ ") {
		return scheme, hostport, errors.New("must be host:port (or a scheme, host and port), without user, path or query")
	}
	err = checkHostPort(hostport)
	if err != nil && hasScheme && isMissingPort(err) {
		_, err = splitHost(hostport)
	}
	return scheme, hostport, err
}

// checkHostPort checks "host:port" with a numeric port.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

func isMissingPort(err error) bool {
	var ae *net.AddrError
	return errors.As(err, &ae) && ae.Err == "missing port in address"
}

// splitHost checks a host written without a port: a name, an IPv4
// address, or an IPv6 address in brackets.
func splitHost(hostport string) (string, error) {
	host := hostport
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", errors.New("unterminated '[' in address")
		}
		host = host[1 : len(host)-1]
		if _, err := netip.ParseAddr(host); err != nil || !strings.Contains(host, ":") {
			return "", errors.New("brackets must hold an IPv6 address")
		}
	}
	if host == "" {
		return "", errors.New("missing host")
	}
	return host, nil
}

// sameServer is the key two cluster addresses share when they name the same
// server as far as the file can tell without DNS: the host lower-cased and
// without a trailing dot, an IP address in canonical form (an IPv4-mapped
// IPv6 address as IPv4), localhost, 127.0.0.1 and ::1 as one loopback host,
// and the scheme's default port filled in. The scheme itself is not part
// of the key: one port serves one protocol.
func sameServer(scheme, hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, _ = splitHost(hostport)
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n) // "08500" is port 8500
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		host = a.String()
		if a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || a == netip.IPv6Loopback() {
			host = "localhost"
		}
	}
	return net.JoinHostPort(host, port)
}
