// Command mkimage builds gwsync's container image as an OCI image-layout
// tarball without a container engine: one layer on an empty base holding
// the static gwsync binary, a CA bundle, and passwd/group entries for the
// non-root user the image runs as. The output loads with `podman load`,
// `docker load` (Docker 25+), `skopeo copy oci-archive:…` or
// `crane push`; `make image` runs it.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.Binary, "binary", "", "static gwsync binary to put in the image (required)")
	fs.StringVar(&o.Out, "out", "", "OCI image-layout tarball to write (required)")
	fs.StringVar(&o.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle to install as /etc/ssl/certs/ca-certificates.crt")
	fs.StringVar(&o.Tag, "tag", "gwsync:dev", "image reference recorded in the layout (org.opencontainers.image.ref.name)")
	fs.StringVar(&o.Version, "version", "dev", "version label")
	fs.StringVar(&o.Arch, "arch", runtime.GOARCH, "image architecture (must match the binary)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if o.Binary == "" || o.Out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "mkimage: -binary and -out are required")
		return 2
	}
	// Reproducible builds: every timestamp is SOURCE_DATE_EPOCH, or the
	// Unix epoch.
	o.Created = time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "mkimage: SOURCE_DATE_EPOCH %q: %v\n", s, err)
			return 2
		}
		o.Created = time.Unix(sec, 0).UTC()
	}
	digest, err := build(o)
	if err != nil {
		fmt.Fprintf(stderr, "mkimage: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %s %s\n", o.Out, o.Tag, digest)
	return 0
}
