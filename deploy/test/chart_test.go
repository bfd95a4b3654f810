package test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	corev1 "k8s.io/api/core/v1"
)

// TestChart_Lint is `helm lint --strict` for every value set: any warning
// is a failure.
func TestChart_Lint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			vals := parseValues(t, vs.values)
			linter := lint.AllWithKubeVersion(chartDir, vals, namespace, &kubeVersion)
			for _, msg := range linter.Messages {
				if msg.Severity >= support.WarningSev {
					t.Errorf("lint: %s", msg)
				}
			}
		})
	}
}

// TestChart_Render renders every value set, decodes every manifest
// strictly, and checks what the chart promises about each object.
func TestChart_Render(t *testing.T) {
	ch := loadChart(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			m := renderDecode(t, ch, vs.values)
			checkDeployment(t, m)
			if m.service == nil || m.service.Spec.Ports[0].TargetPort.StrVal != "admin" {
				t.Errorf("service: want one targeting the admin port, got %+v", m.service)
			}
			if m.configMaps[fullname] == nil || m.configMaps[fullname].Data["gwsync.hcl"] == "" {
				t.Fatalf("no ConfigMap %s with gwsync.hcl", fullname)
			}
			if strings.Contains(m.configMaps[fullname].Data["gwsync.hcl"], "token =") {
				t.Errorf("an inline token in the ConfigMap:\n%s", m.configMaps[fullname].Data["gwsync.hcl"])
			}
			if !strings.Contains(m.notes, "gwsync resync") || !strings.Contains(m.notes, "gwsync status") {
				t.Errorf("NOTES.txt does not say how to get status and force a resync:\n%s", m.notes)
			}
		})
	}
}

func checkDeployment(t *testing.T, m *manifests) {
	t.Helper()
	d := m.deployment
	if d == nil {
		t.Fatal("no Deployment")
	}
	if d.Spec.Replicas == nil {
		t.Error("no replicas")
	}
	// Replicas share the gateways through locks, so a surge pod is safe.
	if d.Spec.Strategy.Type != "RollingUpdate" || d.Spec.Strategy.RollingUpdate == nil {
		t.Errorf("strategy %+v: want RollingUpdate", d.Spec.Strategy)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "run" || !slices.Contains(c.Args, "-config=/etc/gwsync/config/gwsync.hcl") {
		t.Errorf("args %q: want `run -config=/etc/gwsync/config/gwsync.hcl`", c.Args)
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Error("pod may run as root")
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("root filesystem is writable")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation allowed")
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
		t.Error("capabilities not all dropped")
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v: want GET /healthz", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v: want GET /readyz", p)
	}
	if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want memory requests and limits", c.Resources)
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation: a config change would not roll the pod")
	}
	for _, e := range c.Env {
		if e.Value != "" && strings.Contains(strings.ToLower(e.Name), "token") {
			t.Errorf("env %s carries a literal token", e.Name)
		}
	}
	if token := envFrom(c, "GWSYNC_TOKEN"); token == nil || token.SecretKeyRef == nil {
		t.Error("GWSYNC_TOKEN is not taken from the admin Secret: `kubectl exec … gwsync resync` would be refused")
	}
	checkReplicaEnv(t, c)
	// The Go runtime's soft limit sits under the container's memory limit.
	if e := envValue(c, "GOMEMLIMIT"); e != "230MiB" {
		t.Errorf("GOMEMLIMIT = %q, want the default 230MiB (90%% of the 256Mi limit)", e)
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// checkReplicaEnv: each pod's replica ID is its name and it advertises its
// pod IP (gwsync adds the admin port), both from the downward API.
func checkReplicaEnv(t *testing.T, c corev1.Container) {
	t.Helper()
	if id := envFrom(c, "GWSYNC_REPLICA"); id == nil || id.FieldRef == nil || id.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("GWSYNC_REPLICA %+v: want the pod name (fieldRef metadata.name)", id)
	}
	if ip := envFrom(c, "POD_IP"); ip == nil || ip.FieldRef == nil || ip.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("POD_IP %+v: want fieldRef status.podIP", ip)
	}
	ipAt, advAt := -1, -1
	for i, e := range c.Env {
		switch e.Name {
		case "POD_IP":
			ipAt = i
		case "GWSYNC_ADVERTISE":
			advAt = i
			// The bare pod IP: gwsync adds admin.address's port and
			// brackets an IPv6 address ("$(POD_IP):port" is wrong there).
			if e.Value != "$(POD_IP)" {
				t.Errorf("GWSYNC_ADVERTISE = %q, want the bare $(POD_IP)", e.Value)
			}
		}
	}
	// Kubernetes expands $(POD_IP) only from variables defined before.
	if advAt < 0 || ipAt > advAt {
		t.Errorf("GWSYNC_ADVERTISE (at %d) must follow POD_IP (at %d)", advAt, ipAt)
	}
}

func envFrom(c corev1.Container, name string) *corev1.EnvVarSource {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom
		}
	}
	return nil
}

// TestChart_OptionalObjects checks each optional object appears exactly
// when enabled.
func TestChart_OptionalObjects(t *testing.T) {
	ch := loadChart(t)
	def := renderDecode(t, ch, "")
	if def.monitor != nil || def.rule != nil || def.configMaps[fullname+"-dashboard"] != nil {
		t.Error("defaults render a ServiceMonitor, PrometheusRule or dashboard; they need the operator/sidecar and are opt-in")
	}
	if def.pdb == nil || def.sa == nil || def.secrets[fullname+"-admin"] == nil {
		t.Errorf("defaults lack the PodDisruptionBudget, ServiceAccount or admin Secret")
	}
	on := renderDecode(t, ch, valueSets[1].values)
	if on.monitor == nil || on.monitor.Spec.Endpoints[0].Path != "/metrics" || on.monitor.Labels["release"] != "prometheus" {
		t.Errorf("ServiceMonitor: %+v", on.monitor)
	}
	if on.rule == nil || len(on.rule.Spec.Groups) == 0 || on.rule.Labels["release"] != "prometheus" {
		t.Errorf("PrometheusRule: %+v", on.rule)
	}
	dash := on.configMaps[fullname+"-dashboard"]
	if dash == nil || dash.Labels["grafana_dashboard"] != "1" || !strings.Contains(dash.Data["gwsync.json"], `"uid": "gwsync"`) {
		t.Errorf("dashboard ConfigMap: %+v", dash)
	}
	if on.pdb == nil || on.pdb.Spec.MinAvailable == nil || on.pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget: want minAvailable only, got %+v", on.pdb)
	}
	ext := renderDecode(t, ch, valueSets[4].values)
	if ext.secrets[fullname+"-admin"] != nil || ext.sa != nil {
		t.Error("existingSecret / serviceAccount.create=false still render the admin Secret or ServiceAccount")
	}
	if ext.deployment.Spec.Template.Spec.ServiceAccountName != "gwsync-runner" {
		t.Errorf("serviceAccountName %q", ext.deployment.Spec.Template.Spec.ServiceAccountName)
	}
}

// TestChart_ConfigChecksum: a config change changes the pod template (so
// the pod rolls); a change elsewhere does not.
func TestChart_ConfigChecksum(t *testing.T) {
	ch := loadChart(t)
	sum := func(values string) string {
		return renderDecode(t, ch, values).deployment.Spec.Template.Annotations["checksum/config"]
	}
	base := sum("")
	if got := sum("services: {exclude: [consul, vault]}"); got == base {
		t.Error("checksum unchanged after a config change")
	}
	if got := sum("podLabels: {a: b}"); got != base {
		t.Error("checksum changed without a config change")
	}
}

// TestChart_Replicas: the default runs two replicas spread over nodes;
// anti-affinity follows podAntiAffinity unless affinity is given; the
// admin API binds every interface so the other replicas reach it.
func TestChart_Replicas(t *testing.T) {
	ch := loadChart(t)
	def := renderDecode(t, ch, "")
	d := def.deployment
	if *d.Spec.Replicas != 2 {
		t.Errorf("default replicas %d, want 2", *d.Spec.Replicas)
	}
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxSurge.IntValue() != 1 || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v: want maxSurge 1, maxUnavailable 0", ru)
	}
	if def.pdb == nil || def.pdb.Spec.MaxUnavailable == nil || def.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %+v: want maxUnavailable 1", def.pdb)
	}
	if !strings.Contains(def.configMaps[fullname].Data["gwsync.hcl"], `address    = "0.0.0.0:9310"`) {
		t.Errorf("the admin API does not bind 0.0.0.0:\n%s", def.configMaps[fullname].Data["gwsync.hcl"])
	}
	selector := d.Spec.Selector.MatchLabels
	aff := d.Spec.Template.Spec.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Fatalf("default affinity %+v: want one preferred pod anti-affinity term", aff)
	}
	term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
	if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector == nil || !maps.Equal(term.LabelSelector.MatchLabels, selector) {
		t.Errorf("anti-affinity term %+v: want the pod's own selector per host", term)
	}

	hard := renderDecode(t, ch, "podAntiAffinity: hard\nreplicas: 3").deployment
	if a := hard.Spec.Template.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 ||
		!maps.Equal(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].LabelSelector.MatchLabels, selector) {
		t.Errorf("hard anti-affinity: %+v", a)
	}
	if *hard.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", *hard.Spec.Replicas)
	}
	if a := renderDecode(t, ch, `podAntiAffinity: ""`).deployment.Spec.Template.Spec.Affinity; a != nil {
		t.Errorf("podAntiAffinity \"\" still renders %+v", a)
	}
	own := renderDecode(t, ch, "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a]}]}]}}}").deployment
	if a := own.Spec.Template.Spec.Affinity; a == nil || a.NodeAffinity == nil || a.PodAntiAffinity != nil {
		t.Errorf("an explicit affinity is not used as given: %+v", a)
	}
}
