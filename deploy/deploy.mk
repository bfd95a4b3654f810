# deploy/deploy.mk — included by the root Makefile (which defines GO, BIN,
# CONSUL and exports PATH with bin/ first).
#
# The deployment artefacts (Helm chart, Grafana dashboard, alert rules,
# container image) are tested from the deploy/ Go module: its own go.mod, so
# Helm, Kubernetes and Prometheus libraries never enter the root module.
# The tests use those libraries directly (helm's lint and engine packages,
# Prometheus' rulefmt and PromQL parser, the Kubernetes API types), fetched
# from the Go module proxy by `go test`: no helm or promtool binary is built,
# so nothing is added to TEST_TOOLS.

IMAGE_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_TAG     ?= gwsync:$(IMAGE_VERSION)
IMAGE_ARCH    ?= $(shell $(GO) env GOARCH)
IMAGE_BIN     := $(CURDIR)/dist/gwsync-linux-$(IMAGE_ARCH)
IMAGE_TAR     ?= $(CURDIR)/dist/gwsync-image.oci.tar

.PHONY: image test-deploy

# An OCI image-layout tarball, built without a container engine: a static
# binary on an empty base with CA certificates and a non-root user.
# Load it with `podman load -i`, `docker load -i` (Docker 25+) or
# `skopeo copy oci-archive:$(IMAGE_TAR) …`. With Docker available,
# `docker build -f deploy/Dockerfile .` builds the equivalent image.
image:
	@mkdir -p $(CURDIR)/dist
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath \
		-ldflags "-s -w -X main.version=$(IMAGE_VERSION)" -o $(IMAGE_BIN) ./cmd/gwsync
	cd deploy && $(GO) run ./mkimage -binary $(IMAGE_BIN) -out $(IMAGE_TAR) \
		-tag $(IMAGE_TAG) -version $(IMAGE_VERSION) -arch $(IMAGE_ARCH)

# Chart lint/render/strict decode/schema/`gwsync validate`, rules lint,
# dashboard checks, metric names against a real scrape (needs Consul), and
# the image test. -mod=mod: the deploy module replaces the root module with
# ../, so a dependency the root module gains is resolved here too instead of
# failing on a missing go.sum line.
test-deploy: $(CONSUL)
	cd deploy && $(GO) vet -mod=mod ./... && $(GO) test -mod=mod -count=1 -timeout 10m ./...

# For the root test recipe: `$(MAKE) $(TEST_DEPLOY)` after `go test ./...`.
TEST_DEPLOY := test-deploy
