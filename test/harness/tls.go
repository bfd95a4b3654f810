package harness

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gwsync/gwsync/config"
)

// CA is a certificate authority made by the Consul binary itself (`consul
// tls ca create`), with the certificates it issues (`consul tls cert
// create`), all in a temporary directory of the test. Servers started
// WithTLS(ca) get a server certificate of their datacenter from it; the
// harness's own calls, and any gwsync client built from ClientTLS, present
// a client certificate it issued.
type CA struct {
	// Dir holds every file; CAFile is the CA certificate (PEM).
	Dir    string
	CAFile string

	bin string

	mu     sync.Mutex // one `consul tls` command at a time: they number files in Dir
	client *certPair  // the shared client certificate, issued on first use
}

type certPair struct{ cert, key string }

// NewCA creates a certificate authority in a new temporary directory.
func NewCA(t testing.TB) *CA {
	t.Helper()
	ca := &CA{Dir: t.TempDir(), bin: ConsulBin(t)}
	if _, err := ca.run("ca", "create"); err != nil {
		t.Fatalf("harness: %v", err)
	}
	ca.CAFile = filepath.Join(ca.Dir, "consul-agent-ca.pem")
	if _, err := os.Stat(ca.CAFile); err != nil {
		t.Fatalf("harness: consul tls ca create made no %s: %v", ca.CAFile, err)
	}
	return ca
}

// ServerCert issues a server certificate for datacenter dc: its names are
// server.<dc>.consul, localhost and 127.0.0.1, so both Consul's own
// verify_server_hostname and a client dialing 127.0.0.1 accept it.
func (ca *CA) ServerCert(t testing.TB, dc string) (certFile, keyFile string) {
	t.Helper()
	p, err := ca.issue("-server", "-dc", dc)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return p.cert, p.key
}

// ClientCert returns the CA's client certificate (`consul tls cert create
// -client`), issued on first use and shared afterwards.
func (ca *CA) ClientCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	ca.mu.Lock()
	p := ca.client
	ca.mu.Unlock()
	if p == nil {
		var err error
		if p, err = ca.issue("-client"); err != nil {
			t.Fatalf("harness: %v", err)
		}
		ca.mu.Lock()
		if ca.client == nil {
			ca.client = p
		}
		p = ca.client
		ca.mu.Unlock()
	}
	return p.cert, p.key
}

// ClientTLS is the tls block a gwsync client of a server started
// WithTLS(ca) needs: this CA and its client certificate.
func (ca *CA) ClientTLS(t testing.TB) config.TLS {
	t.Helper()
	cert, key := ca.ClientCert(t)
	return config.TLS{Enabled: true, CAFile: ca.CAFile, CertFile: cert, KeyFile: key}
}

// tlsConfig is the harness's own client configuration for servers of this
// CA: it trusts only the CA and presents the client certificate.
func (ca *CA) tlsConfig(t testing.TB) *tls.Config {
	t.Helper()
	certFile, keyFile := ca.ClientCert(t)
	pem, err := os.ReadFile(ca.CAFile)
	if err != nil {
		t.Fatalf("harness: read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("harness: %s holds no PEM certificate", ca.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("harness: client certificate: %v", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}}
}

// issue runs `consul tls cert create` with args and returns the files it
// saved (it prints "==> Saved <name>" for the certificate, then the key).
func (ca *CA) issue(args ...string) (*certPair, error) {
	out, err := ca.run(append([]string{"cert", "create"}, args...)...)
	if err != nil {
		return nil, err
	}
	var saved []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if name, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "==> Saved "); ok {
			saved = append(saved, filepath.Join(ca.Dir, name))
		}
	}
	if len(saved) != 2 || !strings.HasSuffix(saved[1], "-key.pem") {
		return nil, fmt.Errorf("consul tls cert create %s: cannot tell the files it saved from its output:\n%s", strings.Join(args, " "), out)
	}
	return &certPair{cert: saved[0], key: saved[1]}, nil
}

func (ca *CA) run(args ...string) ([]byte, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	cmd := exec.Command(ca.bin, append([]string{"tls"}, args...)...)
	cmd.Dir = ca.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("consul tls %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// tlsHCL is the agent configuration of a server with TLS everywhere: the
// HTTPS API and internal RPC verify incoming certificates (a client
// without one of this CA is refused) and outgoing ones, and servers check
// each other's names (server.<dc>.consul), as a production cluster should.
func tlsHCL(caFile, certFile, keyFile string) string {
	return fmt.Sprintf(`tls {
  defaults {
    ca_file = %q
    cert_file = %q
    key_file = %q
    verify_incoming = true
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
}`, caFile, certFile, keyFile)
}
