{{- define "sscsi.name" -}}secrets-store-csi-driver{{- end -}}

{{- define "sscsi.labels" -}}
app.kubernetes.io/name: {{ include "sscsi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app: {{ include "sscsi.name" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sscsi.socketDir" -}}{{ .Values.linux.kubeletRootDir }}/plugins/csi-secrets-store{{- end -}}
