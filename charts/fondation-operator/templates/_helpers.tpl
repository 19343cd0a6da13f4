{{/* Name of the chart, or nameOverride. */}}
{{- define "fondation-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the release's objects: the release name when it holds the chart's name. */}}
{{- define "fondation-operator.fullname" -}}
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

{{- define "fondation-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fondation-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fondation-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fondation-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "fondation-operator.serviceAccountName" -}}
{{- default (include "fondation-operator.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "fondation-operator.tokenSecretName" -}}
{{- default (printf "%s-token-key" (include "fondation-operator.fullname" .)) .Values.tokenKey.existingSecret }}
{{- end }}

{{- define "fondation-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "fondation-operator.runnerImage" -}}
{{- printf "%s:%s" .Values.runner.image.repository (default .Chart.AppVersion .Values.runner.image.tag) }}
{{- end }}

{{- define "fondation-operator.ingestUrl" -}}
{{- default (printf "http://%s.%s.svc:%v" (include "fondation-operator.fullname" .) .Release.Namespace .Values.service.ingestPort) .Values.ingestUrl }}
{{- end }}

{{/* FONDATION_RESOURCES: the runner's default requests and limits, as the operator's JSON. */}}
{{- define "fondation-operator.runnerResources" -}}
{{- $r := .Values.runner.resources }}
{{- dict
    "cpu_request" (toString $r.requests.cpu)
    "memory_request" (toString $r.requests.memory)
    "ephemeral_request" (toString $r.requests.ephemeralStorage)
    "cpu_limit" (toString $r.limits.cpu)
    "memory_limit" (toString $r.limits.memory)
    "ephemeral_limit" (toString $r.limits.ephemeralStorage)
  | toJson }}
{{- end }}

{{/* Where the Convex deploy key file is mounted. */}}
{{- define "fondation-operator.convexKeyDir" -}}
/var/run/secrets/fondation.dev/convex
{{- end }}

{{/* A value as an environment string: whole numbers without an exponent (values
     files give numbers as float64, and 1000000 would print as 1e+06). */}}
{{- define "fondation-operator.envString" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . }}
{{- else }}
{{- . }}
{{- end }}
{{- end }}
