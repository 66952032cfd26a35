{{/* Names truncated to 63 characters, as Kubernetes requires. */}}
{{- define "faiss-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "faiss-operator.labels" -}}
{{ include "faiss-operator.componentLabels" (dict "root" . "component" "operator") }}
{{- end -}}

{{/* Labels of one component's objects: (dict "root" $ "component" "builder"). */}}
{{- define "faiss-operator.componentLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/part-of: faiss-index-operator
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "faiss-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "faiss-operator.serviceAccountName" -}}
{{- default (include "faiss-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "faiss-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
ServiceAccount of the builder / serving pods, (dict "root" $ "component" "builder"): the
value's name, else "<fullname>-<component>" when the chart creates it, else the
namespace's "default" account. Those pods never get its token (automountServiceAccountToken
false on the account and on the pod) and no RBAC names it.
*/}}
{{- define "faiss-operator.workloadServiceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount -}}
{{- if $sa.name -}}
{{- $sa.name -}}
{{- else if $sa.create -}}
{{- printf "%s-%s" (include "faiss-operator.fullname" .root | trunc 54 | trimSuffix "-") .component -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/*
Namespaces that get the chart's builder / serving ServiceAccounts: the release namespace,
workloadNamespaces and the namespace of every faissIndexes entry, without duplicates.
*/}}
{{- define "faiss-operator.workloadNamespaces" -}}
{{- $namespaces := list .Release.Namespace -}}
{{- range .Values.workloadNamespaces }}{{ $namespaces = append $namespaces . }}{{ end -}}
{{- range .Values.faissIndexes }}{{ $namespaces = append $namespaces (default $.Release.Namespace .namespace) }}{{ end -}}
{{- $namespaces | uniq | toJson -}}
{{- end -}}

{{/*
Deep merge for faissIndexes: maps merge key by key, anything else in "override" replaces
the default (lists too), and a null removes the default's key. Unlike sprig's
mergeOverwrite, false, 0 and "" in an entry do override the defaults. Returns JSON.
*/}}
{{- define "faiss-operator.deepMerge" -}}
{{- $merged := deepCopy .base -}}
{{- range $key, $value := .override -}}
{{- $current := get $merged $key -}}
{{- if kindIs "invalid" $value -}}
{{- $_ := unset $merged $key -}}
{{- else if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- $_ := set $merged $key (include "faiss-operator.deepMerge" (dict "base" $current "override" $value) | fromJson) -}}
{{- else -}}
{{- $_ := set $merged $key $value -}}
{{- end -}}
{{- end -}}
{{- toJson $merged -}}
{{- end -}}

{{/*
Namespaces the operator watches: watchNamespace and watchNamespaces together, without
duplicates, as JSON ("[]" = every namespace). With any, RBAC is Roles in exactly these.
*/}}
{{- define "faiss-operator.watchNamespaces" -}}
{{- $namespaces := list -}}
{{- with .Values.watchNamespace }}{{ $namespaces = append $namespaces . }}{{ end -}}
{{- range .Values.watchNamespaces }}{{ $namespaces = append $namespaces . }}{{ end -}}
{{- $namespaces | uniq | toJson -}}
{{- end -}}

{{/*
Secrets holding the credentials of storage.allowed grants (other than "operator"), as JSON:
each is mounted read-only into the operator pod at /var/run/faiss-operator/s3/<name>/.
*/}}
{{- define "faiss-operator.grantSecrets" -}}
{{- $secrets := list -}}
{{- range .Values.storage.allowed }}
{{- if and .credentialsSecret (ne .credentialsSecret "operator") }}{{ $secrets = append $secrets .credentialsSecret }}{{ end -}}
{{- end -}}
{{- $secrets | uniq | toJson -}}
{{- end -}}
