{{/* Labels on every object; the same as `trellis install` sets. */}}
{{- define "trellis.labels" -}}
app.kubernetes.io/managed-by: trellis
app.kubernetes.io/name: trellis
app.kubernetes.io/part-of: trellis
{{- end }}

{{/* Where a webhook calls the control plane: its Service, or controlPlaneURL. */}}
{{- define "trellis.clientConfig" -}}
{{- if .root.Values.controlPlaneURL }}
url: {{ printf "%s%s" .root.Values.controlPlaneURL .path | quote }}
{{- else }}
service:
  name: trellis
  namespace: {{ .root.Values.namespace }}
  path: {{ .path }}
  port: 443
{{- end }}
{{- with .root.Values.caBundle }}
caBundle: {{ b64enc . }}
{{- end }}
{{- end }}
