{{/*
The controller's HCL configuration, rendered from values. Attributes are
only written when set, so the controller's own defaults apply otherwise.
*/}}

{{/*
hclAttr: dict "name" hclName "value" v "indent" n — a newline, n spaces and
one attribute line when v is set; nothing otherwise.
*/}}
{{- define "gwsync.hclAttr" -}}
{{- $v := .value }}
{{- if not (kindIs "invalid" $v) }}
{{- $pad := repeat (int (default 0 .indent)) " " }}
{{- if kindIs "string" $v }}
{{- printf "\n%s%s = %s" $pad .name (include "gwsync.hclString" $v) }}
{{- else if kindIs "slice" $v }}
{{- $items := list }}
{{- range $v }}{{ $items = append $items (include "gwsync.hclString" .) }}{{ end }}
{{- printf "\n%s%s = [%s]" $pad .name (join ", " $items) }}
{{- else }}
{{- printf "\n%s%s = %v" $pad .name $v }}
{{- end }}
{{- end }}
{{- end }}

{{/* tls block: dict "prefix" volumePrefix "tls" values. */}}
{{- define "gwsync.hclTLS" -}}
{{- $t := .tls }}
{{- if and $t $t.enabled }}
tls {
  {{- if $t.secretName }}
  ca_file   = "../secrets/{{ .prefix }}-tls/ca.crt"
  {{- if $t.certKey }}
  cert_file = "../secrets/{{ .prefix }}-tls/tls.crt"
  key_file  = "../secrets/{{ .prefix }}-tls/tls.key"
  {{- end }}
  {{- end }}
  {{- include "gwsync.hclAttr" (dict "name" "server_name" "value" ($t.serverName | default nil) "indent" 2) }}
  {{- if $t.insecureSkipVerify }}
  insecure_skip_verify = true
  {{- end }}
}
{{- end }}
{{- end }}

{{/* The attributes every cluster block shares: dict "prefix" "cluster". */}}
{{- define "gwsync.hclCluster" -}}
{{- $c := .cluster -}}
address = {{ include "gwsync.hclString" $c.address }}
{{- if and $c.tokenSecret $c.tokenSecret.name }}
token_file = "../secrets/{{ .prefix }}-token/token"
{{- end }}
{{- if and $c.readTokenSecret $c.readTokenSecret.name }}
read_token_file = "../secrets/{{ .prefix }}-read-token/token"
{{- end }}
{{- include "gwsync.hclAttr" (dict "name" "timeout" "value" $c.timeout) }}
{{- include "gwsync.hclTLS" (dict "prefix" .prefix "tls" $c.tls) }}
{{- end }}

{{/* A services block's attributes: dict "services" values "indent" n. */}}
{{- define "gwsync.hclServices" -}}
{{- include "gwsync.hclAttr" (dict "name" "include" "value" .services.include "indent" .indent) }}
{{- include "gwsync.hclAttr" (dict "name" "exclude" "value" .services.exclude "indent" .indent) }}
{{- include "gwsync.hclAttr" (dict "name" "tags" "value" .services.tags "indent" .indent) }}
{{- end }}

{{- define "gwsync.hcl" -}}
# Rendered by the gwsync Helm chart from its values; edit the values, not
# this file. Relative paths resolve against this file's directory.

public {
  {{- include "gwsync.hclCluster" (dict "prefix" "public" "cluster" .Values.public) | nindent 2 }}
  {{- include "gwsync.hclAttr" (dict "name" "allow_stale" "value" .Values.public.allowStale "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "max_in_flight_per_dc" "value" .Values.public.maxInFlightPerDC "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "max_conns_per_host" "value" .Values.public.maxConnsPerHost "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "max_staleness" "value" .Values.public.maxStaleness "indent" 2) }}
}
{{- with .Values.query }}

query {
  {{- include "gwsync.hclAttr" (dict "name" "manage" "value" .manage "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "prefix" "value" .prefix "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "only_passing" "value" .onlyPassing "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "share_window" "value" .shareWindow "indent" 2) }}
  {{- with .failover }}
  failover {
    {{- include "gwsync.hclAttr" (dict "name" "nearest_n" "value" .nearestN "indent" 4) }}
    {{- include "gwsync.hclAttr" (dict "name" "datacenters" "value" .datacenters "indent" 4) }}
  }
  {{- end }}
}
{{- end }}
{{- with .Values.services }}

services {
  {{- include "gwsync.hclServices" (dict "services" . "indent" 2) }}
}
{{- end }}
{{- with .Values.safety }}

safety {
  {{- include "gwsync.hclAttr" (dict "name" "max_delete_fraction" "value" .maxDeleteFraction "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "delete_guard_min" "value" .deleteGuardMin "indent" 2) }}
}
{{- end }}
{{- with .Values.mirror }}

mirror {
  {{- include "gwsync.hclAttr" (dict "name" "node_prefix" "value" .nodePrefix "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "kv_prefix" "value" .kvPrefix "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "marker_interval" "value" .markerInterval "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "read_concurrency" "value" .readConcurrency "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "txn_concurrency" "value" .txnConcurrency "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "max_sync_age" "value" .maxSyncAge "indent" 2) }}
}
{{- end }}
{{- with .Values.events }}

events {
  {{- include "gwsync.hclAttr" (dict "name" "enabled" "value" .enabled "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "wait" "value" .wait "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "rate" "value" .rate "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "burst" "value" .burst "indent" 2) }}
}
{{- end }}
{{- with .Values.retry }}

retry {
  {{- include "gwsync.hclAttr" (dict "name" "min_backoff" "value" .minBackoff "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "max_backoff" "value" .maxBackoff "indent" 2) }}
}
{{- end }}
{{- with .Values.resolver }}

resolver {
  {{- include "gwsync.hclAttr" (dict "name" "max_marker_age" "value" .maxMarkerAge "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "snapshot_path" "value" .snapshotPath "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "max_services" "value" .maxServices "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "idle_timeout" "value" .idleTimeout "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "public_rate" "value" .publicRate "indent" 2) }}
}
{{- end }}
{{- with .Values.ha }}

ha {
  {{- include "gwsync.hclAttr" (dict "name" "session_ttl" "value" .sessionTTL "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "lock_delay" "value" .lockDelay "indent" 2) }}
}
{{- end }}
{{- range $i, $g := .Values.gateways }}

gateway {{ include "gwsync.hclString" $g.name }} {
  source_datacenter = {{ include "gwsync.hclString" $g.sourceDatacenter }}
  {{- include "gwsync.hclAttr" (dict "name" "schedule" "value" $g.schedule "indent" 2) }}
  {{- include "gwsync.hclAttr" (dict "name" "query_prefix" "value" $g.queryPrefix "indent" 2) }}
  {{- with $g.services }}
  services {
    {{- include "gwsync.hclServices" (dict "services" . "indent" 4) }}
  }
  {{- end }}
  dedicated {
    {{- include "gwsync.hclCluster" (dict "prefix" (printf "gateway-%d" $i) "cluster" $g.dedicated) | nindent 4 }}
  }
}
{{- end }}

admin {
  address    = "0.0.0.0:{{ .Values.admin.port }}"
  token_file = "../secrets/admin-token/token"
  {{- $svc := include "gwsync.fullname" . }}
  {{- $hosts := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) }}
  {{- include "gwsync.hclAttr" (dict "name" "allowed_hosts" "value" (concat $hosts (.Values.admin.allowedHosts | default list) | uniq) "indent" 2) }}
}
{{ end }}

{{/* Problems the schema cannot express, reported at install time. */}}
{{- define "gwsync.checkGateways" -}}
{{- $names := dict }}
{{- $addrs := dict }}
{{- range .Values.gateways }}
{{- if hasKey $names .name }}
{{- fail (printf "gateways: the name %q is used by more than one gateway" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- $a := .dedicated.address }}
{{- if hasKey $addrs $a }}
{{- fail (printf "gateways: %q and %q share the dedicated address %q; each gateway needs its own dedicated cluster" (get $addrs $a) .name $a) }}
{{- end }}
{{- $_ := set $addrs $a .name }}
{{- end }}
{{- end }}
