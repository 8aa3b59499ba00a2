{{/*
Chart name, cut to 63 characters (the DNS label limit).
*/}}
{{- define "workflow-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release name + chart name (or fullnameOverride), cut to 63 characters. A release name
that already contains the chart name is used alone.
*/}}
{{- define "workflow-worker.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "workflow-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "workflow-worker.labels" -}}
helm.sh/chart: {{ include "workflow-worker.chart" . }}
{{ include "workflow-worker.selectorLabels" . }}
app.kubernetes.io/version: {{ include "workflow-worker.versionLabel" . | quote }}
app.kubernetes.io/component: worker
app.kubernetes.io/part-of: workflow-worker
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: only name and instance, which never change over a release's life.
*/}}
{{- define "workflow-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "workflow-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of the `helm test` pod: distinct from the selector labels.
*/}}
{{- define "workflow-worker.testLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
app.kubernetes.io/part-of: workflow-worker
{{- end }}

{{/*
Name of the ServiceAccount the pods use.
*/}}
{{- define "workflow-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "workflow-worker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image tag: image.tag, or the chart's appVersion when empty.
*/}}
{{- define "workflow-worker.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
Image reference: repository:tag, plus @digest when image.digest is set (the runtime then pulls by
digest; the tag stays for people reading the manifest).
*/}}
{{- define "workflow-worker.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (include "workflow-worker.imageTag" .) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
The app.kubernetes.io/version label: the image tag as a valid label value (at most 63 characters,
only letters, digits, '-', '_' and '.', alphanumeric at both ends). A Docker tag may be 128
characters long, or carry a digest ("1.4.0@sha256:..."), which a label cannot hold.
*/}}
{{- define "workflow-worker.versionLabel" -}}
{{- $tag := regexReplaceAll "@.*$" (include "workflow-worker.imageTag" .) "" }}
{{- $tag = regexReplaceAll "[^A-Za-z0-9_.-]" $tag "_" | trunc 63 }}
{{- regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" $tag "" }}
{{- end }}

{{/*
The in-flight hash of the queue (docs/contract.md, workflow_worker/engine/keys.py): `Q:processing` when Q already
carries a Redis Cluster hash tag (a `{` followed later by `}` with at least one character between,
counting from the first `{`), otherwise `{Q}:processing`.
*/}}
{{- define "workflow-worker.processingKey" -}}
{{- $q := .Values.worker.queue }}
{{- if regexMatch "^[^{]*\\{[^}]+\\}" $q }}
{{- printf "%s:processing" $q }}
{{- else }}
{{- printf "{%s}:processing" $q }}
{{- end }}
{{- end }}

{{/*
True ("true") when the KEDA objects are rendered: keda.enabled, and either the API server offers
keda.sh/v1alpha1 or keda.assumeInstalled is set. Empty otherwise (then the Deployment keeps replicas).
*/}}
{{- define "workflow-worker.kedaActive" -}}
{{- if and .Values.keda.enabled (or (.Capabilities.APIVersions.Has "keda.sh/v1alpha1") .Values.keda.assumeInstalled) }}
{{- "true" }}
{{- end }}
{{- end }}

{{/*
Redis port the clients dial first: the Sentinel port in sentinel mode, else redis.port.
*/}}
{{- define "workflow-worker.redisDialPort" -}}
{{- if eq .Values.redis.mode "sentinel" }}
{{- .Values.redis.sentinel.port }}
{{- else }}
{{- .Values.redis.port }}
{{- end }}
{{- end }}

{{/*
host:port for KEDA's `address`/`addresses`.
*/}}
{{- define "workflow-worker.redisAddress" -}}
{{- printf "%s:%v" .Values.redis.host (include "workflow-worker.redisDialPort" .) }}
{{- end }}

{{/*
REDIS_URL for the worker, never with a password (that comes from the Secret as REDIS_PASSWORD).
Standalone and sentinel carry the database index; Redis Cluster only has database 0.
*/}}
{{- define "workflow-worker.redisUrl" -}}
{{- $scheme := ternary "rediss" "redis" .Values.redis.tls.enabled }}
{{- if eq .Values.redis.mode "cluster" }}
{{- printf "%s://%s" $scheme (include "workflow-worker.redisAddress" .) }}
{{- else }}
{{- printf "%s://%s/%v" $scheme (include "workflow-worker.redisAddress" .) .Values.redis.database }}
{{- end }}
{{- end }}

{{/*
KEDA trigger type for redis.mode.
*/}}
{{- define "workflow-worker.kedaTriggerType" -}}
{{- get (dict "standalone" "redis" "sentinel" "redis-sentinel" "cluster" "redis-cluster") .Values.redis.mode }}
{{- end }}

{{/*
Where the CA bundle is mounted in the worker container.
*/}}
{{- define "workflow-worker.caFile" -}}
{{- printf "/etc/workflow-worker/redis-ca/%s" .Values.redis.tls.caKey }}
{{- end }}

{{/*
Checks that cannot be expressed in values.schema.json. Included by the Deployment.
*/}}
{{- define "workflow-worker.validate" -}}
{{- $drain := int .Values.worker.shutdownTimeoutSeconds }}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- if le $grace (add $drain 15) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than worker.shutdownTimeoutSeconds (%d) + 15 s of requeue margin; set it to at least %d" $grace $drain (add $drain 16)) }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- fail (printf "keda.minReplicaCount (%d) must not exceed keda.maxReplicaCount (%d)" (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- end }}
{{- if gt (float64 .Values.worker.benchmark.minSeconds) (float64 .Values.worker.benchmark.maxSeconds) }}
{{- fail "worker.benchmark.minSeconds must not exceed worker.benchmark.maxSeconds" }}
{{- end }}
{{- if and .Values.redis.tls.caSecret (not .Values.redis.tls.enabled) }}
{{- fail "redis.tls.caSecret is set but redis.tls.enabled is false" }}
{{- end }}
{{- if and .Values.redis.sentinel.passwordFromSecret (not .Values.redis.existingSecret) }}
{{- fail "redis.sentinel.passwordFromSecret needs redis.existingSecret" }}
{{- end }}
{{- if and .Values.keda.enabled .Values.keda.fallback.enabled (gt (int .Values.keda.fallback.replicas) (int .Values.keda.maxReplicaCount)) }}
{{- fail (printf "keda.fallback.replicas (%d) must not exceed keda.maxReplicaCount (%d)" (int .Values.keda.fallback.replicas) (int .Values.keda.maxReplicaCount)) }}
{{- end }}
{{- if and .Values.podDeletionCost.enabled (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "podDeletionCost.enabled grants the pods' ServiceAccount the right to patch pods; give them their own (serviceAccount.create=true or serviceAccount.name), not the namespace's default one" }}
{{- end }}
{{- end }}

{{/*
True ("true") when the pods carry the prometheus.io/* scrape annotations: scrapeAnnotations is on
and no PodMonitor is rendered. A pod is then scraped by exactly one path (annotation-based job or
PodMonitor), never both, whatever the values say.
*/}}
{{- define "workflow-worker.scrapeAnnotations" -}}
{{- if and .Values.scrapeAnnotations (not .Values.podMonitor.enabled) }}
{{- "true" }}
{{- end }}
{{- end }}

{{/*
A probe's timing fields from .Values.probes.<name>, without its `enabled` switch.
*/}}
{{- define "workflow-worker.probeTimings" -}}
{{- toYaml (omit . "enabled") }}
{{- end }}

{{/*
A rule expression with a namespace="<namespace>" matcher added to every series it selects: the
worker's metrics (workflow_*) and recorded series (names with a colon). Takes (dict "expr" "namespace").
Selectors with braces get the matcher first in their braces, bare names get braces of their own.
*/}}
{{- define "workflow-worker.namespacedExpr" -}}
{{- $name := `\b(workflow_\w*|[A-Za-z_]\w*:[\w:]*)` }}
{{- $expr := regexReplaceAll (printf `%s\{` $name) .expr (printf `${1}{namespace=%q,` .namespace) }}
{{- regexReplaceAll (printf `%s([^\w:{]|$)` $name) $expr (printf `${1}{namespace=%q}${2}` .namespace) }}
{{- end }}

{{/*
Labels of the console's pods: without the worker's `app.kubernetes.io/name`, so the workers'
Deployment, Service, PodDisruptionBudget and PodMonitor never select them.
*/}}
{{- define "workflow-worker.consoleSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: console
app.kubernetes.io/part-of: workflow-worker
{{- end }}

{{- define "workflow-worker.consoleLabels" -}}
helm.sh/chart: {{ include "workflow-worker.chart" . }}
{{ include "workflow-worker.consoleSelectorLabels" . }}
app.kubernetes.io/version: {{ include "workflow-worker.versionLabel" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
