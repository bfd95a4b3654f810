package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gwsync/gwsync/config"
)

// containerRoot is where the chart mounts its ConfigMap and Secrets.
const containerRoot = "/etc/gwsync"

// layOut recreates the container's /etc/gwsync from a rendered release
// under dir: the ConfigMap's files where the Deployment mounts the
// ConfigMap, and a placeholder file for every item of every Secret volume
// where the Deployment mounts it. It returns the path of the config file
// named by the container's -config argument. A config path the mounts do
// not provide is then a missing file for `gwsync validate`.
func layOut(t *testing.T, m *manifests, dir string) string {
	t.Helper()
	pod := m.deployment.Spec.Template.Spec
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	c := pod.Containers[0]
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			t.Fatalf("volume mount %q has no volume", vm.Name)
		}
		if !strings.HasPrefix(vm.MountPath, containerRoot+"/") {
			continue
		}
		at := filepath.Join(dir, strings.TrimPrefix(vm.MountPath, containerRoot))
		switch {
		case v.ConfigMap != nil:
			cm := m.configMaps[v.ConfigMap.Name]
			if cm == nil {
				t.Fatalf("volume %q mounts ConfigMap %q, which the chart does not render", v.Name, v.ConfigMap.Name)
			}
			for name, data := range cm.Data {
				writeFile(t, filepath.Join(at, name), data)
			}
		case v.Secret != nil:
			if len(v.Secret.Items) == 0 {
				t.Fatalf("secret volume %q projects no items", v.Name)
			}
			for _, it := range v.Secret.Items {
				writeFile(t, filepath.Join(at, it.Path), "placeholder-"+v.Secret.SecretName+"-"+it.Key+"\n")
			}
		}
	}
	var cfg string
	for _, a := range c.Args {
		if p, ok := strings.CutPrefix(a, "-config="); ok {
			cfg = p
		}
	}
	if !strings.HasPrefix(cfg, containerRoot+"/") {
		t.Fatalf("config path %q is not under %s", cfg, containerRoot)
	}
	return filepath.Join(dir, strings.TrimPrefix(cfg, containerRoot))
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func validate(t *testing.T, cfgPath string) (string, error) {
	t.Helper()
	cmd := exec.Command(gwsyncBin, "validate", "-config", cfgPath)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestChart_ConfigValidates: for every value set, the ConfigMap the chart
// renders, with the files the Deployment mounts next to it, is accepted by
// the real `gwsync validate`. Chart and binary cannot drift apart.
func TestChart_ConfigValidates(t *testing.T) {
	ch := loadChart(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			m := renderDecode(t, ch, vs.values)
			cfgPath := layOut(t, m, t.TempDir())
			out, err := validate(t, cfgPath)
			if err != nil {
				t.Fatalf("gwsync validate: %v\n%s\n--- rendered config:\n%s", err, out, m.configMaps[fullname].Data["gwsync.hcl"])
			}
		})
	}
}

// TestChart_ConfigValues checks that values reach the controller with their
// meaning intact, including strings HCL would otherwise interpolate.
func TestChart_ConfigValues(t *testing.T) {
	ch := loadChart(t)
	load := func(t *testing.T, values string) *config.Config {
		m := renderDecode(t, ch, values)
		cfg, err := config.Load(layOut(t, m, t.TempDir()), nil)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return cfg
	}
	t.Run("every-config-key", func(t *testing.T) {
		cfg := load(t, valueSets[4].values)
		switch {
		case cfg.Public.Address != "[fd00::1]:8500" || cfg.Public.AllowStale || cfg.Public.Timeout != 2500*time.Millisecond:
			t.Errorf("public: %+v", cfg.Public)
		case cfg.Public.MaxInFlightPerDC != 16 || cfg.Public.MaxConnsPerHost != 100:
			t.Errorf("public limits: %+v", cfg.Public)
		case cfg.Query.Manage || cfg.Query.Prefix != "edge-sync-" || cfg.Query.OnlyPassing || cfg.Query.ShareWindow != 0:
			t.Errorf("query: %+v", cfg.Query)
		case cfg.Query.NearestN != 0 || !slices.Equal(cfg.Query.Datacenters, []string{"dc2", "dc3"}):
			t.Errorf("failover: %+v", cfg.Query)
		case !slices.Equal(cfg.Services.Tags, []string{"public", "v${x}"}) || !slices.Equal(cfg.Services.Exclude, []string{"consul", "*-canary"}):
			t.Errorf("services: %+v", cfg.Services)
		case cfg.Safety.MaxDeleteFraction != 0.25 || cfg.Safety.DeleteGuardMin != 20:
			t.Errorf("safety: %+v", cfg.Safety)
		case cfg.Mirror.NodePrefix != "mirror-" || cfg.Mirror.KVPrefix != "gwsync/edge/" || cfg.Mirror.MarkerInterval != 30*time.Second || cfg.Mirror.ReadConcurrency != 8:
			t.Errorf("mirror: %+v", cfg.Mirror)
		case cfg.Admin.Address != "0.0.0.0:9400" || cfg.Admin.Token == "":
			t.Errorf("admin: %+v", cfg.Admin)
		// Through the Service's names the admin API answers (its Host
		// check refused them: 403), and through the names listed.
		case !slices.Equal(cfg.Admin.AllowedHosts, []string{fullname, fullname + "." + namespace, fullname + "." + namespace + ".svc",
			fullname + "." + namespace + ".svc.cluster.local", "gwsync.ops.example.com", "ops${x}.example"}):
			t.Errorf("admin allowed hosts: %q", cfg.Admin.AllowedHosts)
		case cfg.Public.MaxStaleness != 3*time.Second || cfg.Public.ReadToken != "placeholder-consul-public-read-token":
			t.Errorf("public staleness and read token: %v %q", cfg.Public.MaxStaleness, cfg.Public.ReadToken)
		case cfg.Mirror.TxnConcurrency != 4 || cfg.Mirror.MaxSyncAge != 2*time.Hour:
			t.Errorf("mirror: %+v", cfg.Mirror)
		case cfg.Events != config.Events{Enabled: false, Wait: 2 * time.Minute, Rate: 2.5, Burst: 20}:
			t.Errorf("events: %+v", cfg.Events)
		case cfg.Retry != config.Retry{MinBackoff: 2 * time.Second, MaxBackoff: time.Minute}:
			t.Errorf("retry: %+v", cfg.Retry)
		case cfg.Resolver.MaxMarkerAge != 4*time.Minute || cfg.Resolver.SnapshotFile("edge") != "/tmp/gwsync-edge.json" ||
			cfg.Resolver.MaxServices != 500 || cfg.Resolver.IdleTimeout != 15*time.Minute || cfg.Resolver.PublicRate != 7.5:
			t.Errorf("resolver: %+v", cfg.Resolver)
		case cfg.HA.SessionTTL != 12*time.Second || cfg.HA.LockDelay != 3*time.Second || cfg.HA.ReplicaID != "":
			t.Errorf("ha: %+v (the replica ID must come from the pod, not the ConfigMap)", cfg.HA)
		}
	})
	t.Run("several-gateways", func(t *testing.T) {
		cfg := load(t, valueSets[2].values)
		var got []string
		for _, g := range cfg.Gateways {
			got = append(got, g.Name+"|"+g.SourceDatacenter+"|"+g.Schedule+"|"+g.Dedicated.Scheme+"://"+g.Dedicated.Address+"|"+g.Dedicated.Timeout.String()+"|"+g.Dedicated.Token)
		}
		want := []string{
			"edge-bj|dc1|@every 30s|http://consul-edge-bj.consul.svc:8500|5s|placeholder-edge-bj-token-token",
			"edge_sh|dc2|*/2 * * * *|http://consul-edge-sh.consul.svc:8500|3s|placeholder-gateway-tokens-edge-sh",
			"Edge3|dc-3|" + config.DefaultSchedule + "|http://10.0.0.7:8500|5s|",
		}
		if !slices.Equal(got, want) {
			t.Errorf("gateways:\n got %q\nwant %q", got, want)
		}
		if cfg.Public.Token != "placeholder-consul-public-token-token" {
			t.Errorf("public token %q: not read from the mounted Secret", cfg.Public.Token)
		}
		sh := cfg.Gateways[1]
		if sh.QueryPrefix != "sh-" || !slices.Equal(sh.Services.Include, []string{"web*"}) || !slices.Equal(sh.Services.Tags, []string{"sh"}) ||
			sh.ReadToken != "placeholder-gateway-read-tokens-edge-sh" {
			t.Errorf("edge_sh per-gateway settings: prefix %q, services %+v, read token %q", sh.QueryPrefix, sh.Services, sh.ReadToken)
		}
		if bj := cfg.Gateways[0]; bj.QueryPrefix == "sh-" || slices.Equal(bj.Services.Include, []string{"web*"}) {
			t.Errorf("edge-bj took edge_sh's per-gateway settings: %+v", bj)
		}
	})
	t.Run("tls", func(t *testing.T) {
		cfg := load(t, valueSets[3].values)
		p := cfg.Public.TLS
		if !p.Enabled || !strings.HasSuffix(p.CAFile, "/secrets/public-tls/ca.crt") || !strings.HasSuffix(p.KeyFile, "/secrets/public-tls/tls.key") || p.ServerName != "server.dc1.consul" {
			t.Errorf("public tls: %+v", p)
		}
		if g := cfg.Gateways[1].Dedicated; g.Scheme != "https" || !g.TLS.InsecureSkipVerify || g.TLS.CAFile != "" {
			t.Errorf("edge-sh dedicated: %+v", g)
		}
	})
}

// TestChart_ValidateRejects shows the validate step can fail: values the
// schema accepts but the controller does not are caught.
func TestChart_ValidateRejects(t *testing.T) {
	ch := loadChart(t)
	m := renderDecode(t, ch, `gateways: [{name: edge, sourceDatacenter: dc1, schedule: "every now and then", dedicated: {address: "10.0.0.1:8500"}}]`)
	out, err := validate(t, layOut(t, m, t.TempDir()))
	if err == nil || !strings.Contains(out, "schedule") {
		t.Fatalf("gwsync validate accepted a bad schedule (err %v):\n%s", err, out)
	}
}
