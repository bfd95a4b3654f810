package test

// valueSets are the values the chart is linted, rendered, decoded and
// validated with: the defaults and non-default sets that turn on every
// optional object, several gateways, TLS, and every configuration key.
var valueSets = []struct {
	name   string
	values string
}{
	{name: "defaults", values: ``},
	{name: "all-optional-objects", values: `
public:
  tokenSecret: {name: consul-public-token, key: acl}
serviceMonitor:
  enabled: true
  interval: 15s
  labels: {release: prometheus}
prometheusRule:
  enabled: true
  labels: {release: prometheus}
grafanaDashboard:
  enabled: true
podDisruptionBudget:
  enabled: true
  minAvailable: 0
replicas: 3
rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}
podAntiAffinity: hard
serviceAccount:
  annotations: {example.com/owner: platform}
podAnnotations: {example.com/scrape: "false"}
podLabels: {team: platform}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]
priorityClassName: system-cluster-critical
imagePullSecrets: [{name: registry}]
`},
	{name: "several-gateways", values: `
public:
  address: consul.public.example:8500
  tokenSecret: {name: consul-public-token, key: token}
  timeout: 7s
  maxInFlightPerDC: 4
gateways:
  - name: edge-bj
    sourceDatacenter: dc1
    schedule: "@every 30s"
    dedicated:
      address: consul-edge-bj.consul.svc:8500
      tokenSecret: {name: edge-bj-token, key: token}
  - name: edge_sh
    sourceDatacenter: dc2
    schedule: "*/2 * * * *"
    queryPrefix: sh-
    services: {include: ["web*"], exclude: [web-canary], tags: [sh]}
    dedicated:
      address: http://consul-edge-sh.consul.svc:8500
      tokenSecret: {name: gateway-tokens, key: edge-sh}
      readTokenSecret: {name: gateway-read-tokens, key: edge-sh}
      timeout: 3s
  - name: Edge3
    sourceDatacenter: dc-3
    dedicated:
      address: 10.0.0.7:8500
`},
	{name: "tls", values: `
public:
  address: https://consul.public.example:8501
  tokenSecret: {name: consul-public-token, key: token}
  tls:
    enabled: true
    secretName: consul-public-tls
    caKey: ca.pem
    certKey: client.pem
    keyKey: client-key.pem
    serverName: server.dc1.consul
gateways:
  - name: edge-bj
    sourceDatacenter: dc1
    dedicated:
      address: consul-edge-bj.consul.svc:8501
      tokenSecret: {name: edge-bj-token, key: token}
      tls:
        enabled: true
        secretName: edge-bj-ca
  - name: edge-sh
    sourceDatacenter: dc2
    dedicated:
      address: consul-edge-sh.consul.svc:8501
      tls:
        enabled: true
        serverName: consul-edge-sh
        insecureSkipVerify: true
`},
	{name: "every-config-key", values: `
logLevel: debug
logJSON: false
public:
  address: "[fd00::1]:8500"
  allowStale: false
  timeout: 2500ms
  maxInFlightPerDC: 16
  maxConnsPerHost: 100
  maxStaleness: 3s
  readTokenSecret: {name: consul-public-read, key: token}
query:
  manage: false
  prefix: edge-sync-
  onlyPassing: false
  shareWindow: 0s
  failover:
    nearestN: 0
    datacenters: [dc2, dc3]
services:
  include: ["web*", "api-?"]
  exclude: ["consul", "*-canary"]
  tags: [public, "v${x}"]
safety:
  maxDeleteFraction: 0.25
  deleteGuardMin: 20
mirror:
  nodePrefix: mirror-
  kvPrefix: gwsync/edge/
  markerInterval: 30s
  readConcurrency: 8
  txnConcurrency: 4
  maxSyncAge: 2h
events:
  enabled: false
  wait: 2m
  rate: 2.5
  burst: 20
retry:
  minBackoff: 2s
  maxBackoff: 1m
resolver:
  maxMarkerAge: 4m
  snapshotPath: /tmp/gwsync-%g.json
  maxServices: 500
  idleTimeout: 15m
  publicRate: 7.5
ha:
  sessionTTL: 12s
  lockDelay: 3s
podAntiAffinity: ""
admin:
  port: 9400
  existingSecret: ops-admin
  existingSecretKey: admin-token
  allowedHosts: [gwsync.ops.example.com, "ops${x}.example"]
serviceAccount:
  create: false
  name: gwsync-runner
replicas: 0
`},
}
