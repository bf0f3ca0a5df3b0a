{{/* Names ------------------------------------------------------------------ */}}
{{- define "achilles.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "achilles.fullname" -}}
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

{{/* "<fullname>-<component>", e.g. achilles-raw-sink. Call with (list $ "raw-sink"). */}}
{{- define "achilles.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "achilles.fullname" $root | trunc 50 | trimSuffix "-") (index . 1) }}
{{- end }}

{{- define "achilles.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: call with (list $ "component"). */}}
{{- define "achilles.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "achilles.chart" $root }}
{{ include "achilles.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: achilles
{{- end }}

{{- define "achilles.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "achilles.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "achilles.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "achilles.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "achilles.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "achilles.secretName" -}}
{{- default (include "achilles.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* A topic name with the configured prefix: (list $ "achilles.events.v1"). */}}
{{- define "achilles.topic" -}}
{{- printf "%s%s" (index . 0).Values.kafka.topicPrefix (index . 1) }}
{{- end }}

{{/* The consumers, as (name, values key, binary, metrics env var). */}}
{{- define "achilles.consumers" -}}
- {name: raw-sink, key: rawSink, binary: achilles-raw-sink, listenEnv: ACHILLES_SINK__METRICS_LISTEN}
- {name: processor, key: processor, binary: achilles-processor, listenEnv: ACHILLES_PROCESSOR__METRICS_LISTEN}
- {name: agent, key: agent, binary: achilles-agent, listenEnv: ACHILLES_AGENT__METRICS_LISTEN}
{{- end }}

{{/* Render-time checks JSON Schema cannot express (they compare two values). */}}
{{- define "achilles.validate" -}}
{{- $partitions := int .Values.kafka.partitions }}
{{- range $c := include "achilles.consumers" . | fromYamlArray }}
{{- $v := index $.Values $c.key }}
{{- if $v.enabled }}
{{- if and (not $.Values.keda.enabled) (gt (int $v.replicaCount) $partitions) }}
{{- fail (printf "%s.replicaCount (%d) exceeds kafka.partitions (%d): members beyond the partition count of a consumer group get no partition and only add rebalances" $c.key (int $v.replicaCount) $partitions) }}
{{- end }}
{{- if and $.Values.keda.enabled (gt (int $v.keda.minReplicaCount) $partitions) }}
{{- fail (printf "%s.keda.minReplicaCount (%d) exceeds kafka.partitions (%d)" $c.key (int $v.keda.minReplicaCount) $partitions) }}
{{- end }}
{{- end }}
{{- end }}
{{- if le (mul (int .Values.terminationGracePeriodSeconds) 1000) (int .Values.shutdownDeadlineMs) }}
{{- fail (printf "terminationGracePeriodSeconds (%d s) must be longer than shutdownDeadlineMs (%d ms), or Kubernetes kills consumers mid-drain" (int .Values.terminationGracePeriodSeconds) (int .Values.shutdownDeadlineMs)) }}
{{- end }}
{{- if and .Values.api.enabled (le (int .Values.terminationGracePeriodSeconds) (int .Values.api.preStopSleepSeconds)) }}
{{- fail "terminationGracePeriodSeconds must be longer than api.preStopSleepSeconds" }}
{{- end }}
{{- end }}

{{/* Environment shared by every Achilles container: config file, secrets, logs. */}}
{{- define "achilles.env" -}}
- name: ACHILLES_CONFIG
  value: /etc/achilles/achilles.toml
- name: ACHILLES_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "achilles.secretName" . }}
      key: {{ .Values.secrets.keys.databaseUrl }}
- name: ACHILLES_AUTH__KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "achilles.secretName" . }}
      key: {{ .Values.secrets.keys.authKeys }}
- name: ACHILLES_DEV_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "achilles.secretName" . }}
      key: {{ .Values.secrets.keys.devApiKey }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by every Deployment: (list $ "component"). */}}
{{- define "achilles.podSpecCommon" -}}
{{- $root := index . 0 -}}
serviceAccountName: {{ include "achilles.serviceAccountName" $root }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "achilles.fullname" $root }}
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end }}

{{- define "achilles.volumeMounts" -}}
- name: config
  mountPath: /etc/achilles
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Pod annotations: config checksum (a config change rolls the pods) + user's. */}}
{{- define "achilles.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
