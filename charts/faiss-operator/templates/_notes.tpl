{{/* The runbook printed after install and upgrade (NOTES.txt); a define so tests can render it. */}}
{{- define "faiss-operator.notes" -}}
{{- $ns := .Release.Namespace }}
{{- $fullname := include "faiss-operator.fullname" . }}
faiss-index-operator {{ .Chart.AppVersion }} is installed in namespace {{ $ns }} ({{ .Values.replicaCount }} replica{{ if gt (int .Values.replicaCount) 1 }}s, one leads{{ end }}).

Runbook
  Is it healthy?        helm test {{ .Release.Name }} -n {{ $ns }} --logs
{{- if .Values.leaderElection.enabled }}
  Who leads?            kubectl get lease -n {{ $ns }} {{ $fullname }}-leader -o jsonpath='{.spec.holderIdentity}{"\n"}'
                        (the holder identity is "<pod name>_<suffix>")
  Leader's logs:        kubectl logs -n {{ $ns }} "$(kubectl get lease -n {{ $ns }} {{ $fullname }}-leader -o jsonpath='{.spec.holderIdentity}' | sed 's/_[^_]*$//')"
                        (a standby's logs only say it waits for the Lease)
{{- else }}
  Operator logs:        kubectl logs -n {{ $ns }} deploy/{{ $fullname }}      (leader election off: the only replica acts)
{{- end }}
  Operator pods:        kubectl get pods -n {{ $ns }} -l app.kubernetes.io/instance={{ .Release.Name }},app.kubernetes.io/name={{ .Chart.Name }}
  All indexes:          kubectl get fi -A -o wide
  What serves and why:  kubectl describe fi <name> -n <namespace>      (Conditions and Events)
  Force a rebuild:      kubectl annotate fi <name> -n <namespace> --overwrite faiss.indexops.io/rebuild-requested-at="$(date -u +%FT%TZ)"
{{- if .Values.faissIndexes }}

Indexes of this release:
{{- range .Values.faissIndexes }}
  kubectl get fi -n {{ default $ns .namespace }} {{ .name }}
{{- end }}
{{- else }}

Declare an index:       kubectl apply -n <namespace> -f config/samples/faissindex-hnsw-6h.yaml
                        (or list them under faissIndexes in the values)
{{- end }}

Conditions: Ready (a validated version serves), Progressing (Building / RollingOut),
Degraded (BuildFailed / ValidationFailed / StorageError / InvalidSpec; the previous
version keeps serving), Stalled (retries stopped). Events carry the details.
{{- end -}}
