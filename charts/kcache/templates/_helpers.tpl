{{/* Names ------------------------------------------------------------------------------------ */}}

{{- define "kcache.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kcache.fullname" -}}
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

{{- define "kcache.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kcache.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kcache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: cache-server
{{- end }}

{{- define "kcache.labels" -}}
helm.sh/chart: {{ include "kcache.chart" . }}
app.kubernetes.io/name: {{ include "kcache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kcache
{{- end }}

{{- define "kcache.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kcache.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kcache.webhookServiceName" -}}
{{- include "kcache.fullname" . }}
{{- end }}

{{- define "kcache.metricsServiceName" -}}
{{- printf "%s-metrics" (include "kcache.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kcache.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Watch scope ------------------------------------------------------------------------------ */}}

{{/* The namespace watched in single-namespace mode. */}}
{{- define "kcache.watchedNamespace" -}}
{{- default .Release.Namespace .Values.watch.namespace }}
{{- end }}

{{/* Namespaces the webhook never sees in all-namespaces mode. */}}
{{- define "kcache.excludedNamespaces" -}}
{{- $excluded := list "kube-system" "kube-public" .Release.Namespace }}
{{- range .Values.watch.excludedNamespaces }}
{{- $excluded = append $excluded . }}
{{- end }}
{{- toJson ($excluded | uniq) }}
{{- end }}

{{/* Certificates ----------------------------------------------------------------------------- */}}

{{/* The Secret the serving certificate and key are mounted from. */}}
{{- define "kcache.tlsSecretName" -}}
{{- if eq .Values.certificates.mode "existingSecret" }}
{{- required "certificates.existingSecret.name is required when certificates.mode is existingSecret" .Values.certificates.existingSecret.name }}
{{- else }}
{{- printf "%s-webhook-tls" (include "kcache.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kcache.tlsCertKey" -}}
{{- if eq .Values.certificates.mode "existingSecret" }}{{ .Values.certificates.existingSecret.certKey }}{{ else }}tls.crt{{ end }}
{{- end }}

{{- define "kcache.tlsKeyKey" -}}
{{- if eq .Values.certificates.mode "existingSecret" }}{{ .Values.certificates.existingSecret.keyKey }}{{ else }}tls.key{{ end }}
{{- end }}

{{- define "kcache.certManagerCertificateName" -}}
{{- printf "%s-webhook" (include "kcache.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The self-signed CA and serving certificate. On upgrade the existing Secret is read back with
`lookup` and reused, so the caBundle in the webhook configuration and the certificate the pods
serve never change behind the API server's back, until less than a quarter of the certificate's
life is left: then new ones are generated (Helm cannot parse a certificate, so the Secret carries
the validity it was generated with in two annotations, in seconds since the epoch; a Secret
without them, from an older chart, is renewed too). On renewal the webhook configuration trusts
the old CA and the new one, so that pods still serving the old certificate until the kubelet
updates their volume are not refused; the next upgrade drops the old CA. Returns JSON {ca, crt,
key, notBefore, notAfter, previousCa, reused} (PEM and decimal strings). Call it once per render
(webhook.yaml does) since a fresh call generates new keys.
*/}}
{{- define "kcache.selfSignedCert" -}}
{{- $secretName := include "kcache.tlsSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- $now := now | unixEpoch | int64 }}
{{- $result := dict "previousCa" "" }}
{{- $complete := and $existing $existing.data (hasKey $existing.data "ca.crt") (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") }}
{{- $keep := false }}
{{- if $complete }}
{{- $annotations := $existing.metadata.annotations | default dict }}
{{- $notBefore := index $annotations "kcache.io/certificate-not-before" | default "" | toString }}
{{- $notAfter := index $annotations "kcache.io/certificate-not-after" | default "" | toString }}
{{- if and (regexMatch "^[0-9]+$" $notBefore) (regexMatch "^[0-9]+$" $notAfter) }}
{{- $life := sub (int64 $notAfter) (int64 $notBefore) }}
{{- $left := sub (int64 $notAfter) $now }}
{{- if and (gt $life 0) (gt (mul $left 4) $life) }}
{{- $keep = true }}
{{- $_ := set $result "notBefore" $notBefore }}
{{- $_ := set $result "notAfter" $notAfter }}
{{- end }}
{{- end }}
{{- end }}
{{- if $keep }}
{{- $_ := set $result "ca" (index $existing.data "ca.crt" | b64dec) }}
{{- $_ := set $result "crt" (index $existing.data "tls.crt" | b64dec) }}
{{- $_ := set $result "key" (index $existing.data "tls.key" | b64dec) }}
{{- $_ := set $result "reused" true }}
{{- else }}
{{- $svc := include "kcache.webhookServiceName" . }}
{{- $ns := .Release.Namespace }}
{{- $days := int .Values.certificates.selfSigned.validityDays }}
{{- $altNames := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) }}
{{- $ca := genCA (printf "%s-ca" (include "kcache.fullname" .)) $days }}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc $ns) nil $altNames $days $ca }}
{{- $_ := set $result "ca" $ca.Cert }}
{{- $_ := set $result "crt" $cert.Cert }}
{{- $_ := set $result "key" $cert.Key }}
{{- $_ := set $result "notBefore" (toString $now) }}
{{- $_ := set $result "notAfter" (toString (add $now (mul $days 86400))) }}
{{- if $complete }}
{{- $_ := set $result "previousCa" (index $existing.data "ca.crt" | b64dec) }}
{{- end }}
{{- $_ := set $result "reused" false }}
{{- end }}
{{- toJson $result }}
{{- end }}

{{/* Database --------------------------------------------------------------------------------- */}}

{{/* The Secret holding the admission stamp secret (templates/admission-stamp.yaml). */}}
{{- define "kcache.admissionStampSecretName" -}}
{{- .Values.admissionStamp.existingSecret | default (printf "%s-admission-stamp" (include "kcache.fullname" .)) }}
{{- end }}

{{- define "kcache.bundledDbName" -}}
{{- printf "%s-postgresql" (include "kcache.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kcache.bundledDbSelectorLabels" -}}
app.kubernetes.io/name: {{ include "kcache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: postgresql
{{- end }}

{{/* The Secret and key holding the database password the server uses. */}}
{{- define "kcache.dbPasswordSecretName" -}}
{{- if eq .Values.database.mode "bundled" }}
{{- default (include "kcache.bundledDbName" .) .Values.database.bundled.existingPasswordSecret }}
{{- else }}
{{- .Values.database.external.passwordSecret.name }}
{{- end }}
{{- end }}

{{- define "kcache.dbPasswordSecretKey" -}}
{{- if eq .Values.database.mode "bundled" }}password{{ else }}{{ .Values.database.external.passwordSecret.key }}{{ end }}
{{- end }}

{{/* Validates value combinations that the schema cannot express. Renders nothing. */}}
{{- define "kcache.validate" -}}
{{- if eq .Values.database.mode "external" }}
{{- if not .Values.database.external.connectionSecret.name }}
{{- if not .Values.database.external.host }}
{{- fail "database.external.host (or database.external.connectionSecret.name) is required when database.mode is external" }}
{{- end }}
{{- if not .Values.database.external.passwordSecret.name }}
{{- fail "database.external.passwordSecret.name is required when database.mode is external (a Secret holding the password; the chart never takes a password as a plain value)" }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq .Values.certificates.mode "existingSecret" }}
{{- if not .Values.certificates.existingSecret.name }}
{{- fail "certificates.existingSecret.name is required when certificates.mode is existingSecret" }}
{{- end }}
{{- if not .Values.certificates.existingSecret.caBundle }}
{{- fail "certificates.existingSecret.caBundle (base64 PEM of the signing CA) is required when certificates.mode is existingSecret" }}
{{- end }}
{{- end }}
{{- if ge (int .Values.server.lookupTimeoutMs) (mul 1000 (int .Values.webhook.timeoutSeconds)) }}
{{- fail "server.lookupTimeoutMs must be shorter than webhook.timeoutSeconds, or the API server gives up before kcache answers" }}
{{- end }}
{{- if and (eq .Values.server.cacheScope "cluster") (empty .Values.server.clusterScopeWriters) }}
{{- fail "server.cacheScope cluster shares every entry with all namespaces: list the namespaces whose steps may be recorded into it in server.clusterScopeWriters (for example [kubeflow], or [\"*\"] for every namespace, deliberately)" }}
{{- end }}
{{- with .Values.server.clientAuth }}
{{- if and .enabled (not (or .caSecret .caConfigMap)) }}
{{- fail "server.clientAuth.enabled needs the client CA: set server.clientAuth.caSecret or server.clientAuth.caConfigMap" }}
{{- end }}
{{- if and .caSecret .caConfigMap }}
{{- fail "server.clientAuth: set caSecret or caConfigMap, not both" }}
{{- end }}
{{- end }}
{{- if and (not .Values.watch.allNamespaces) (has (include "kcache.watchedNamespace" .) (list "kube-system" "kube-public")) }}
{{- fail "watch.namespace must not be kube-system or kube-public" }}
{{- end }}
{{- end }}
