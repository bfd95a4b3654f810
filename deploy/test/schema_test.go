package test

import (
	"strings"
	"testing"
)

// TestChart_RejectsBadValues: bad values fail at install time, and the
// message names the offending value and what is wrong with it.
func TestChart_RejectsBadValues(t *testing.T) {
	ch := loadChart(t)
	tests := []struct {
		name   string
		values string
		want   []string // every one must appear in the error
	}{
		{name: "negative replicas", values: `replicas: -1`,
			want: []string{"/replicas", "minimum", "0"}},
		{name: "unknown anti-affinity mode", values: `podAntiAffinity: strict`,
			want: []string{"/podAntiAffinity", "value must be one of"}},
		{name: "ha TTL without unit", values: `ha: {sessionTTL: "10"}`,
			want: []string{"/ha/sessionTTL", "does not match pattern"}},
		{name: "replica id is not a value", values: `ha: {replicaID: pod-0}`,
			want: []string{"/ha", "additional properties 'replicaID' not allowed"}},
		{name: "misspelt events key", values: `events: {enable: false}`,
			want: []string{"/events", "additional properties 'enable' not allowed"}},
		{name: "per-gateway services misspelt", values: `gateways: [{name: edge, sourceDatacenter: dc1, services: {includes: [web]}, dedicated: {address: "10.0.0.1:8500"}}]`,
			want: []string{"/gateways/0/services", "additional properties 'includes' not allowed"}},
		{name: "replicas not a number", values: `replicas: "one"`,
			want: []string{"/replicas", "got string, want integer"}},
		{name: "gateway without source datacenter and dedicated cluster", values: `gateways: [{name: edge}]`,
			want: []string{"/gateways/0", "missing properties", "sourceDatacenter", "dedicated"}},
		{name: "no gateways", values: `gateways: []`,
			want: []string{"/gateways", "minItems"}},
		{name: "dedicated address without port", values: `gateways: [{name: edge, sourceDatacenter: dc1, dedicated: {address: consul.local}}]`,
			want: []string{"/gateways/0/dedicated/address", "does not match pattern"}},
		{name: "gateway name with a space", values: `gateways: [{name: "edge bj", sourceDatacenter: dc1, dedicated: {address: "10.0.0.1:8500"}}]`,
			want: []string{"/gateways/0/name", "does not match pattern"}},
		{name: "upper-case datacenter", values: `gateways: [{name: edge, sourceDatacenter: DC1, dedicated: {address: "10.0.0.1:8500"}}]`,
			want: []string{"/gateways/0/sourceDatacenter", "does not match pattern"}},
		{name: "timeout as a number", values: `public: {timeout: 5}`,
			want: []string{"/public/timeout", "got number, want string"}},
		{name: "timeout without unit", values: `public: {timeout: "5"}`,
			want: []string{"/public/timeout", "does not match pattern"}},
		{name: "misspelt key", values: `public: {adress: "10.0.0.1:8500"}`,
			want: []string{"/public", "additional properties 'adress' not allowed"}},
		{name: "inline token is not a value", values: `public: {token: s3cr3t}`,
			want: []string{"/public", "additional properties 'token' not allowed"}},
		{name: "client cert without key", values: `public: {tls: {enabled: true, secretName: ca, certKey: tls.crt}}`,
			want: []string{"/public/tls", "keyKey"}},
		{name: "delete fraction above one", values: `safety: {maxDeleteFraction: 1.5}`,
			want: []string{"/safety/maxDeleteFraction", "maximum"}},
		{name: "bad log level", values: `logLevel: verbose`,
			want: []string{"/logLevel", "value must be one of"}},
		{name: "duplicate gateway names", values: `gateways: [{name: edge, sourceDatacenter: dc1, dedicated: {address: "10.0.0.1:8500"}}, {name: edge, sourceDatacenter: dc2, dedicated: {address: "10.0.0.2:8500"}}]`,
			want: []string{`the name "edge" is used by more than one gateway`}},
		{name: "shared dedicated cluster", values: `gateways: [{name: a, sourceDatacenter: dc1, dedicated: {address: "10.0.0.1:8500"}}, {name: b, sourceDatacenter: dc2, dedicated: {address: "10.0.0.1:8500"}}]`,
			want: []string{`"a" and "b" share the dedicated address "10.0.0.1:8500"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(ch, parseValues(t, tt.values))
			if err == nil {
				t.Fatalf("values accepted:\n%s", tt.values)
			}
			t.Logf("%v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}
