{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "gwsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "gwsync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gwsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gwsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gwsync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gwsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "gwsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gwsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gwsync.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "gwsync.adminSecretName" -}}
{{- default (printf "%s-admin" (include "gwsync.fullname" .)) .Values.admin.existingSecret }}
{{- end }}

{{- define "gwsync.adminSecretKey" -}}
{{- if .Values.admin.existingSecret }}{{ .Values.admin.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/*
Paths inside the container. The ConfigMap is mounted at configDir; every
Secret under secretsDir/<volume>. Paths in the HCL are relative to the
config file's directory, so the rendered file can be validated anywhere
the same tree is laid out (the chart's tests do exactly that).
*/}}
{{- define "gwsync.configDir" -}}/etc/gwsync/config{{- end }}
{{- define "gwsync.secretsDir" -}}/etc/gwsync/secrets{{- end }}
{{- define "gwsync.configFile" -}}{{ include "gwsync.configDir" . }}/gwsync.hcl{{- end }}

{{/* An HCL quoted string: JSON escapes are valid HCL; template sequences are escaped. */}}
{{- define "gwsync.hclString" -}}
{{- toJson (toString .) | replace "${" "$${" | replace "%{" "%%{" }}
{{- end }}

{{/*
The Secret volumes one cluster needs. Input: dict "prefix" (volume name
prefix, e.g. "public" or "gateway-0") and "cluster" (its values).
Output: YAML list items of {name, secret, items}.
*/}}
{{- define "gwsync.clusterSecretVolumes" -}}
{{- $c := .cluster }}
{{- with $c.tokenSecret }}{{ if .name }}
- name: {{ $.prefix }}-token
  secret:
    secretName: {{ .name }}
    items:
      - key: {{ .key | default "token" }}
        path: token
{{- end }}{{ end }}
{{- with $c.readTokenSecret }}{{ if .name }}
- name: {{ $.prefix }}-read-token
  secret:
    secretName: {{ .name }}
    items:
      - key: {{ .key | default "token" }}
        path: token
{{- end }}{{ end }}
{{- with $c.tls }}{{ if and .enabled .secretName }}
- name: {{ $.prefix }}-tls
  secret:
    secretName: {{ .secretName }}
    items:
      - key: {{ .caKey | default "ca.crt" }}
        path: ca.crt
      {{- if .certKey }}
      - key: {{ .certKey }}
        path: tls.crt
      - key: {{ .keyKey }}
        path: tls.key
      {{- end }}
{{- end }}{{ end }}
{{- end }}

{{/* Every Secret volume the controller mounts, besides the admin token. */}}
{{- define "gwsync.secretVolumes" -}}
{{- include "gwsync.clusterSecretVolumes" (dict "prefix" "public" "cluster" .Values.public) }}
{{- range $i, $g := .Values.gateways }}
{{- include "gwsync.clusterSecretVolumes" (dict "prefix" (printf "gateway-%d" $i) "cluster" $g.dedicated) }}
{{- end }}
{{- end }}
