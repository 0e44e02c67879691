{{/* Names and labels. */}}
{{- define "opsight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "opsight.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "opsight.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "opsight.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "webhook"). */}}
{{- define "opsight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "opsight.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "opsight.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "opsight.webhookName" -}}{{ include "opsight.fullname" . }}-webhook{{- end -}}
{{- define "opsight.gatewayName" -}}{{ include "opsight.fullname" . }}-gateway{{- end -}}

{{/* "true" when a tri-state value (auto|true|false) is on; auto asks the given test. */}}
{{- define "opsight.triState" -}}
{{- $v := toString .value -}}
{{- if eq $v "auto" -}}{{ .auto }}{{- else if eq $v "true" -}}true{{- else if eq $v "false" -}}false{{- else -}}
{{- fail (printf "%s: %q: use auto, true or false" .key $v) -}}
{{- end -}}
{{- end -}}

{{- define "opsight.nativeSidecar" -}}
{{- include "opsight.triState" (dict "key" "sidecar.nativeSidecar" "value" .Values.sidecar.nativeSidecar "auto" (semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version)) -}}
{{- end -}}

{{- define "opsight.promOperator" -}}
{{- include "opsight.triState" (dict "key" "prometheusOperator" "value" .Values.prometheusOperator "auto" (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}
{{- end -}}

{{- define "opsight.certManager" -}}
{{- include "opsight.triState" (dict "key" "webhook.certManager.enabled" "value" .Values.webhook.certManager.enabled "auto" (.Capabilities.APIVersions.Has "cert-manager.io/v1")) -}}
{{- end -}}

{{- define "opsight.matchConditions" -}}
{{- include "opsight.triState" (dict "key" "webhook.matchConditions" "value" .Values.webhook.matchConditions "auto" (semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version)) -}}
{{- end -}}

{{/* Where sidecars send spans: sidecar.tracesURL, else the gateway when enabled. */}}
{{- define "opsight.tracesURL" -}}
{{- if .Values.sidecar.tracesURL -}}{{ .Values.sidecar.tracesURL }}
{{- else if .Values.gateway.enabled -}}http://{{ include "opsight.gatewayName" . }}.{{ .Release.Namespace }}.svc:4318
{{- end -}}
{{- end -}}

{{/* Extra sidecar env: cluster, Loki and traces URLs, then sidecar.env. */}}
{{- define "opsight.sidecarExtraEnv" -}}
{{- $env := list -}}
{{- if .Values.cluster }}{{ $env = append $env (dict "name" "OPSIGHT_CLUSTER" "value" .Values.cluster) }}{{ end -}}
{{- if .Values.sidecar.lokiURL }}{{ $env = append $env (dict "name" "OPSIGHT_LOKI_URL" "value" .Values.sidecar.lokiURL) }}{{ end -}}
{{- $traces := include "opsight.tracesURL" . -}}
{{- if $traces }}{{ $env = append $env (dict "name" "OPSIGHT_TRACES_URL" "value" $traces) }}{{ end -}}
{{- toJson (dict "env" (concat $env .Values.sidecar.env)) -}}
{{- end -}}

{{/*
Bytes of an integer memory quantity ("128Mi", "500M", "1073741824"), for
GOMEMLIMIT. Fractions ("1.5Gi") are refused: write them in a smaller unit.
*/}}
{{- define "opsight.memBytes" -}}
{{- $q := . -}}
{{- if kindIs "float64" $q }}{{ $q = printf "%.0f" $q }}{{ end -}}
{{- $q = toString $q -}}
{{- if not (regexMatch "^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$" $q) -}}
{{- fail (printf "resources.limits.memory %q (sidecar or gateway): use an integer with an optional Ki/Mi/Gi/Ti/k/M/G/T suffix; GOMEMLIMIT is computed from it" $q) -}}
{{- end -}}
{{- $units := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 -}}
{{- $num := regexFind "^[0-9]+" $q -}}
{{- $unit := trimPrefix $num $q -}}
{{- mul (int64 $num) (default 1 (get $units $unit)) -}}
{{- end -}}

{{/*
Default container securityContext of the sidecar for a log source: least
privilege that can still read the kubelet's root:root 0640 log files through
the group bits in file mode (see docs/helm.md), fully unprivileged in api mode.
*/}}
{{- define "opsight.sidecarSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
readOnlyRootFilesystem: true
runAsGroup: {{ if eq .logSource "api" }}65532{{ else }}0{{ end }}
runAsNonRoot: true
runAsUser: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
opsight.sidecar: the operator-sidecar container for charts that do not use
the webhook. Include it from an operator's chart that has opsight as a
dependency (docs/helm.md):

  initContainers:   # or containers: when native is false
    {{- include "opsight.sidecar" (dict "values" .Values.opsight "container" "manager"
          "image" "ghcr.io/acme/op:v1.4.2" "serviceName" "acme-operator" "native" true) | nindent 8 }}
  volumes:
    {{- include "opsight.sidecarVolumes" (dict "values" .Values.opsight) | nindent 8 }}

Keys: values (the opsight chart's values), container (the operator container
name), image (its image: the revision defaults to its tag), serviceName
(required: the pod's service identity, CONVENTIONS.md "Service identity";
give the operator container the same OTEL_SERVICE_NAME), revision
(optional override), native (true: restartPolicy Always, for initContainers).
It renders the same container as the webhook injects for a pod annotated
opsight.dev/service: <serviceName> (a test checks).
*/}}
{{- define "opsight.sidecar" -}}
{{- $v := .values -}}
{{- $s := $v.sidecar -}}
{{- $image := printf "%s:%s" $v.image.repository (default (include "opsight.defaultTag" .) $v.image.tag) -}}
{{- $service := required "opsight.sidecar: pass \"serviceName\", the operator's service name (Loki service_name, spans' service.name; set the same OTEL_SERVICE_NAME on the operator container). The container name (kubebuilder's \"manager\") names no service" .serviceName -}}
{{- $revision := .revision -}}
{{- if not $revision -}}
{{- $ref := regexReplaceAll "@.*$" .image "" -}}
{{- $name := regexReplaceAll "^.*/" $ref "" -}}
{{- if contains ":" $name -}}{{ $revision = regexReplaceAll "^[^:]*:" $name "" }}{{- end -}}
{{- if not $revision -}}
{{- if contains "@" .image -}}
{{- $d := regexReplaceAll "^[^@]*@" .image "" -}}
{{- $algo := regexReplaceAll ":.*$" $d "" -}}
{{- $hex := regexReplaceAll "^[^:]*:" $d "" -}}
{{- $revision = printf "%s:%s" $algo (trunc 12 $hex) -}}
{{- else -}}{{ $revision = "latest" }}{{- end -}}
{{- end -}}
{{- end -}}
- name: {{ $s.containerName }}
  image: {{ $image }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  ports:
    - name: opsight-metrics
      containerPort: {{ $s.metricsPort }}
      protocol: TCP
  env:
    - name: POD_NAME
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.name}}
    - name: POD_NAMESPACE
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}
    - name: POD_UID
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.uid}}
    - name: NODE_NAME
      valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.nodeName}}
    - name: CONTAINER_NAME
      value: {{ .container | quote }}
    - name: OPSIGHT_POD_IMAGE
      value: {{ .image | quote }}
    - name: OPSIGHT_REVISION
      value: {{ $revision | quote }}
    - name: OPSIGHT_SERVICE_NAME
      value: {{ $service | quote }}
    - name: OPSIGHT_LOG_SOURCE
      value: {{ $s.logSource | quote }}
    {{- if eq $s.logSource "file" }}
    - name: OPSIGHT_LOG_INCLUDE
      value: {{ printf "/var/log/opsight-pod/%s/*.log*" .container | quote }}
    {{- end }}
    - name: OPSIGHT_STATE_DIR
      value: /var/lib/opsight
    - name: OPSIGHT_STATE_LIMIT_BYTES
      value: {{ include "opsight.memBytes" $s.stateSizeLimit | quote }}
    - name: OPSIGHT_METRICS_ADDR
      value: {{ printf ":%v" $s.metricsPort | quote }}
    {{- with $s.resources.limits }}{{ with .memory }}
    - name: GOMEMLIMIT
      value: {{ div (mul (include "opsight.memBytes" .) $s.goMemLimitPercent) 100 | quote }}
    {{- end }}{{ end }}
    {{- $extra := list -}}
    {{- if $v.cluster }}{{ $extra = append $extra (dict "name" "OPSIGHT_CLUSTER" "value" $v.cluster) }}{{ end -}}
    {{- if $s.lokiURL }}{{ $extra = append $extra (dict "name" "OPSIGHT_LOKI_URL" "value" $s.lokiURL) }}{{ end -}}
    {{- if $s.tracesURL }}{{ $extra = append $extra (dict "name" "OPSIGHT_TRACES_URL" "value" $s.tracesURL) }}{{ end -}}
    {{- with concat $extra $s.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  volumeMounts:
    - name: opsight-state
      mountPath: /var/lib/opsight
    {{- if eq $s.logSource "file" }}
    - name: opsight-pod-logs
      mountPath: /var/log/opsight-pod
      readOnly: true
      subPathExpr: $(POD_NAMESPACE)_$(POD_NAME)_$(POD_UID)
    {{- end }}
    {{- if eq $s.logSource "api" }}
    - name: opsight-kube-api-access
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
    {{- end }}
  securityContext:
    {{- if $s.securityContext }}
    {{- toYaml $s.securityContext | nindent 4 }}
    {{- else }}
    {{- include "opsight.sidecarSecurityContext" $s | nindent 4 }}
    {{- end }}
{{- end -}}

{{/*
opsight.sidecarVolumes: the volumes opsight.sidecar mounts, as list items. In
api mode that includes the sidecar's own service-account token volume, built
like kube-api-access-* (token bound to the pod's service account, cluster CA,
namespace): the sidecar gets it even with automountServiceAccountToken: false.
*/}}
{{- define "opsight.sidecarVolumes" -}}
{{- $s := .values.sidecar -}}
- name: opsight-state
  emptyDir:
    sizeLimit: {{ $s.stateSizeLimit }}
{{- if eq $s.logSource "file" }}
- name: opsight-pod-logs
  hostPath:
    path: {{ $s.podLogsHostPath }}
    type: Directory
{{- end }}
{{- if eq $s.logSource "api" }}
- name: opsight-kube-api-access
  projected:
    defaultMode: 420
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                apiVersion: v1
                fieldPath: metadata.namespace
{{- end }}
{{- end -}}

{{/* The image tag used when image.tag is empty; equal to Chart.yaml appVersion (a test checks). */}}
{{- define "opsight.defaultTag" -}}0.1.0{{- end -}}
