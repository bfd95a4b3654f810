package test

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	releaseName = "gw"
	namespace   = "gwsync"
	fullname    = "gw-gwsync"
)

// kubeVersion is the cluster version the chart is rendered for; it must
// satisfy Chart.yaml's kubeVersion.
var kubeVersion = chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// parseValues reads a YAML values document ("" is no overrides).
func parseValues(t *testing.T, doc string) chartutil.Values {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(doc))
	if err != nil {
		t.Fatalf("values: %v\n%s", err, doc)
	}
	return vals
}

// render does what `helm template` does: coalesce the values with the
// chart's defaults, validate them against values.schema.json, and render
// every template. The error is the one `helm install` would print.
func render(ch *chart.Chart, vals chartutil.Values) (map[string]string, error) {
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = kubeVersion
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, kubeVersion.Version) {
		return nil, fmt.Errorf("chart requires kubeVersion %s", ch.Metadata.KubeVersion)
	}
	opts := chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true}
	rv, err := chartutil.ToRenderValues(ch, vals, opts, caps)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, rv)
}

// manifests is a rendered release, decoded strictly into API types.
type manifests struct {
	objects     []any
	deployment  *appsv1.Deployment
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	service     *corev1.Service
	pdb         *policyv1.PodDisruptionBudget
	sa          *corev1.ServiceAccount
	monitor     *monitoringv1.ServiceMonitor
	rule        *monitoringv1.PrometheusRule
	notes       string
	renderedRaw map[string]string
}

// newObject returns an empty typed object for a manifest's apiVersion and
// kind; the chart may only render kinds listed here.
func newObject(tm metav1.TypeMeta) (any, bool) {
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	}
	return nil, false
}

// decodeAll splits every rendered template into documents and decodes each
// strictly: an unknown or misspelt field, a duplicate key or a wrong type is
// an error, as `kubectl apply --validate=strict` would report it.
func decodeAll(rendered map[string]string) (*manifests, error) {
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, renderedRaw: rendered}
	names := make([]string, 0, len(rendered))
	for name := range rendered {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") {
			m.notes = rendered[name]
			continue
		}
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for i, doc := range splitDocuments(rendered[name]) {
			if err := m.decode(doc); err != nil {
				return nil, fmt.Errorf("%s, document %d: %w", name, i, err)
			}
		}
	}
	return m, nil
}

func splitDocuments(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func (m *manifests) decode(doc string) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return err
	}
	obj, ok := newObject(tm)
	if !ok {
		return fmt.Errorf("unexpected kind %s %s", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	m.objects = append(m.objects, obj)
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if m.deployment != nil {
			return fmt.Errorf("a second Deployment %s", o.Name)
		}
		m.deployment = o
	case *corev1.ConfigMap:
		m.configMaps[o.Name] = o
	case *corev1.Secret:
		m.secrets[o.Name] = o
	case *corev1.Service:
		m.service = o
	case *corev1.ServiceAccount:
		m.sa = o
	case *policyv1.PodDisruptionBudget:
		m.pdb = o
	case *monitoringv1.ServiceMonitor:
		m.monitor = o
	case *monitoringv1.PrometheusRule:
		m.rule = o
	}
	return nil
}

// renderDecode renders values and decodes the result, failing the test on
// any error.
func renderDecode(t *testing.T, ch *chart.Chart, doc string) *manifests {
	t.Helper()
	rendered, err := render(ch, parseValues(t, doc))
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	m, err := decodeAll(rendered)
	if err != nil {
		var all bytes.Buffer
		for name, s := range rendered {
			fmt.Fprintf(&all, "# %s\n%s\n", name, s)
		}
		t.Fatalf("decode: %v\n%s", err, all.String())
	}
	return m
}
