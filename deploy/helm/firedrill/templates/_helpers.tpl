{{/* The release's objects are named after the release, at most 63 characters. */}}
{{- define "firedrill.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "firedrill.labels" -}}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{ include "firedrill.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods: never change them in an upgrade (a Deployment's selector is immutable). */}}
{{- define "firedrill.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ConfigMap holding the drill and scenario files. */}}
{{- define "firedrill.specsConfigMap" -}}
{{- if .Values.existingSpecsConfigMap }}{{ .Values.existingSpecsConfigMap }}{{ else }}{{ include "firedrill.fullname" . }}-specs{{ end }}
{{- end }}

{{/* The subject of every RoleBinding and ClusterRoleBinding: the chart's ServiceAccount. */}}
{{- define "firedrill.subjects" -}}
subjects:
  - kind: ServiceAccount
    name: {{ include "firedrill.fullname" . }}
    namespace: {{ .Release.Namespace }}
{{- end }}
