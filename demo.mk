# One-command demo (included by the Makefile). Needs only Go: Consul is
# built into bin/ by the consul target when missing (about 5 minutes cold).
#
#   make demo       run the demo: 2-DC public Consul, two dedicated clusters,
#                   sample backends, two gwsync run replicas, the reference
#                   gateway; a change through the event path, a graceful
#                   handover, a dedicated cluster killed and restarted (its
#                   owner refills it). Leaves no process behind.
#   make test-demo  the demo's smoke test alone (it also runs in `go test ./...`).
.PHONY: demo test-demo

# Included before the Makefile's first target: keep this file's targets from
# becoming the default goal.
demo_mk_default_goal := $(.DEFAULT_GOAL)

demo: build $(CONSUL)
	$(GO) run ./test/demo -gwsync $(GWSYNC) -consul $(CONSUL) -workdir $(CURDIR)/.demo

test-demo: $(CONSUL)
	$(GO) test -count=1 -run '^TestDemo$$' ./test/demo/

.DEFAULT_GOAL := $(demo_mk_default_goal)
