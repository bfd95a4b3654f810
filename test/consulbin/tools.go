//go:build tools

// Package consulbin pins the Consul server version the tests run. It is built
// with `go build github.com/hashicorp/consul` by the Makefile; nothing imports it.
package consulbin

import _ "github.com/hashicorp/consul"
