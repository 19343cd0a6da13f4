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

{{/* FONDATION_MAX_RESOURCES: the most one runner may request or be limited to. */}}
{{- define "fondation-operator.runnerMaxResources" -}}
{{- $m := .Values.runner.maxResources }}
{{- dict
    "cpu" (toString $m.cpu)
    "memory" (toString $m.memory)
    "ephemeral-storage" (toString $m.ephemeralStorage)
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

{{/* The operator's rights on namespaced objects: cluster-wide in a ClusterRole
when `namespaces` is empty, else in one Role per namespace. */}}
{{- define "fondation-operator.namespacedRules" -}}
  # Its own resource: watch, mirror Convex jobs into it, write its status.
  - apiGroups: [fondation.dev]
    resources: [analysisjobs]
    verbs: [get, list, watch, create, patch]
  - apiGroups: [fondation.dev]
    resources: [analysisjobs/status]
    verbs: [get, patch, update]
  # ownerReferences with blockOwnerDeletion on the Jobs, Secrets and ConfigMaps it creates.
  - apiGroups: [fondation.dev]
    resources: [analysisjobs/finalizers]
    verbs: [update]
  # One Job per attempt; deleted on cancel.
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [get, list, watch, create, delete]
  # Which pod runs an attempt and why it failed. `create` is used only as a
  # dry run (LimitRanges, quotas and admission policies judge the runner pod
  # before its Job exists); a Job could make that pod anyway.
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch, create]
  # The per-job ingest token is created, never read back. `get` reads the
  # opt-in label of a Secret named as credentials, metadata only
  # (PartialObjectMetadata); a Job could mount that Secret anyway.
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, create]
  # The course, in ConfigMaps owned by its AnalysisJob (written with server-side apply;
  # a replaced course's older contents are deleted).
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, create, patch, delete]
  - apiGroups: [""]
    resources: [events]
    verbs: [create, patch]
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
{{- end }}

{{/* The one cluster-scoped right: the start-up check that the CRD is installed. */}}
{{- define "fondation-operator.clusterRules" -}}
  # Start-up check that the CRD is installed.
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    resourceNames: [analysisjobs.fondation.dev]
    verbs: [get]
{{- end }}

{{/* Name of the runner egress NetworkPolicy in each namespace. */}}
{{- define "fondation-operator.runnerPolicyName" -}}
{{- printf "%s-runner-egress" (include "fondation-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Spec of the runner egress NetworkPolicy: DNS, the operator's ingest port,
and addresses outside `networkPolicy.runnerDeniedCIDRs`. */}}
{{- define "fondation-operator.runnerEgressSpec" -}}
{{- $v4 := list }}
{{- $v6 := list }}
{{- range .Values.networkPolicy.runnerDeniedCIDRs }}
{{- if contains ":" . }}{{ $v6 = append $v6 . }}{{ else }}{{ $v4 = append $v4 . }}{{ end }}
{{- end }}
podSelector:
  matchLabels:
    app.kubernetes.io/name: fondation-runner
    app.kubernetes.io/managed-by: fondation-operator
policyTypes: [Egress]
egress:
  - ports:
      - port: 53
        protocol: UDP
      - port: 53
        protocol: TCP
  - to:
      - namespaceSelector:
          matchLabels:
            kubernetes.io/metadata.name: {{ .Release.Namespace }}
        podSelector:
          matchLabels:
            {{- include "fondation-operator.selectorLabels" . | nindent 12 }}
    ports:
      - port: {{ .Values.ports.ingest }}
        protocol: TCP
  - to:
      - ipBlock:
          cidr: 0.0.0.0/0
          {{- with $v4 }}
          except:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      - ipBlock:
          cidr: ::/0
          {{- with $v6 }}
          except:
            {{- toYaml . | nindent 12 }}
          {{- end }}
{{- end }}

{{/* FONDATION_RUNNER_NETWORK_POLICY: the runner egress policy the operator
applies itself when it watches the whole cluster; empty otherwise. */}}
{{- define "fondation-operator.runnerNetworkPolicy" -}}
{{- $np := .Values.networkPolicy }}
{{- if and $np.enabled $np.runnerEgress (not .Values.namespaces) }}
{{- dict "name" (include "fondation-operator.runnerPolicyName" .) "spec" (include "fondation-operator.runnerEgressSpec" . | fromYaml) | toJson }}
{{- else }}
{{- "{}" }}
{{- end }}
{{- end }}
