{{/* Names and labels shared by every template. */}}

{{- define "provisioner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "provisioner.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "provisioner.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "provisioner.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "provisioner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "provisioner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: provisioner
{{- end }}

{{- define "provisioner.labels" -}}
{{ include "provisioner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: workflow-middle-layer
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "provisioner.serviceAccountName" -}}
{{- default (include "provisioner.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "provisioner.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the provisioner's secrets: the chart's own or an existing one. */}}
{{- define "provisioner.secretName" -}}
{{- default (printf "%s-secrets" (include "provisioner.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/* The EDC endpoint secret: the given one, else the one the release's Secret already holds
(kept across upgrades), else a new random one. */}}
{{- define "provisioner.endpointSecret" -}}
{{- if .Values.secrets.edcEndpointSecret }}
{{- .Values.secrets.edcEndpointSecret }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "provisioner.secretName" .) }}
{{- $kept := "" }}
{{- if $existing }}{{ $kept = index ($existing.data | default dict) "edc-endpoint-secret" | default "" }}{{ end }}
{{- if $kept }}{{ $kept | b64dec }}{{ else }}{{ randAlphaNum 48 }}{{ end }}
{{- end }}
{{- end }}

{{- define "provisioner.assetsConfigMap" -}}
{{- default (printf "%s-assets" (include "provisioner.fullname" .)) .Values.assets.existingConfigMap }}
{{- end }}

{{/* SQLite in the data volume needs it to survive restarts; PostgreSQL needs no volume. */}}
{{- define "provisioner.usesDataClaim" -}}
{{- if and .Values.persistence.enabled (not .Values.persistence.existingClaim) }}true{{ end }}
{{- end }}

{{/* The ClusterRole each consumer namespace binds for its workflow-api's job runner. */}}
{{- define "provisioner.runnerClusterRole" -}}
{{- printf "%s-workflow-api-runner" (include "provisioner.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* PROVISIONER_KUBERNETES_* settings of the Kubernetes deployer, from .Values.deployer. */}}
{{- define "provisioner.deployerEnv" -}}
{{- $d := .Values.deployer -}}
{{- $settings := dict
  "DEPLOYER" "kubernetes"
  "KUBERNETES_WORKFLOW_API_IMAGE" $d.workflowApiImage
  "KUBERNETES_NAMESPACE_PREFIX" $d.namespacePrefix
  "KUBERNETES_PROVISIONER_NAMESPACE" .Release.Namespace
  "KUBERNETES_RUNNER_CLUSTER_ROLE" (include "provisioner.runnerClusterRole" .)
  "KUBERNETES_PROVISIONER_URL" (printf "http://%s.%s.svc:%v" (include "provisioner.fullname" .) .Release.Namespace .Values.service.port)
  "KUBERNETES_INGRESS_DOMAIN" (required "deployer.ingress.domain is required" $d.ingress.domain)
  "KUBERNETES_INGRESS_ROUTING" $d.ingress.routing
  "KUBERNETES_INGRESS_PATH_PREFIX" $d.ingress.pathPrefix
  "KUBERNETES_INGRESS_NAMESPACE" $d.ingress.namespace
  "KUBERNETES_INGRESS_ANNOTATIONS" (toJson $d.ingress.annotations)
  "KUBERNETES_PUBLIC_SCHEME" $d.ingress.scheme
  "KUBERNETES_REACH_WORKFLOW_API" "service"
  "KUBERNETES_READINESS_TIMEOUT_SECONDS" (toString $d.readinessTimeoutSeconds)
  "KUBERNETES_REMOVAL_TIMEOUT_SECONDS" (toString $d.removalTimeoutSeconds)
  "KUBERNETES_QUOTA_CPU" (toString $d.quota.cpu)
  "KUBERNETES_QUOTA_MEMORY" (toString $d.quota.memory)
  "KUBERNETES_QUOTA_GPU" (toString $d.quota.gpu)
  "KUBERNETES_QUOTA_MAX_JOBS" (toString $d.quota.maxJobs)
  "KUBERNETES_QUOTA_MAX_PODS" (toString $d.quota.maxPods)
  "KUBERNETES_API_CPU_REQUEST" (toString $d.apiResources.cpuRequest)
  "KUBERNETES_API_MEMORY_REQUEST" (toString $d.apiResources.memoryRequest)
  "KUBERNETES_API_CPU_LIMIT" (toString $d.apiResources.cpuLimit)
  "KUBERNETES_API_MEMORY_LIMIT" (toString $d.apiResources.memoryLimit)
  "KUBERNETES_DATA_VOLUME_SIZE" (toString $d.dataVolumeSize)
  "KUBERNETES_STORAGE_EGRESS_CIDRS" (toJson .Values.storage.egressCidrs)
  "KUBERNETES_WORKFLOW_API_ENV" (toJson $d.workflowApiEnv)
  "KUBERNETES_API_SERVER_CIDRS" (toJson $d.apiEgress.apiServerCidrs)
  "KUBERNETES_API_SERVER_PORT" (toString $d.apiEgress.apiServerPort)
  "KUBERNETES_API_INTERNET_EGRESS" (toString $d.apiEgress.internet)
  "KUBERNETES_PROVISIONER_PORT" "8000"
-}}
{{- with $d.dataSidecarImage }}{{ $_ := set $settings "KUBERNETES_SIDECAR_IMAGE" . }}{{ end }}
{{- with $d.ingress.className }}{{ $_ := set $settings "KUBERNETES_INGRESS_CLASS" . }}{{ end }}
{{- with $d.ingress.tlsSecret }}{{ $_ := set $settings "KUBERNETES_INGRESS_TLS_SECRET" . }}{{ end }}
{{- with $d.dataStorageClass }}{{ $_ := set $settings "KUBERNETES_DATA_STORAGE_CLASS" . }}{{ end }}
{{- with $d.ingress.port }}{{ $_ := set $settings "KUBERNETES_PUBLIC_PORT" (toString .) }}{{ end }}
{{- with .Values.storage.port }}{{ $_ := set $settings "KUBERNETES_STORAGE_PORT" (toString .) }}{{ end }}
{{- range $name, $value := $settings }}
- name: PROVISIONER_{{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
