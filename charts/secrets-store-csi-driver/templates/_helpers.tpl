{{/*
Effective values. Every template starts with
  {{- $v := dict }}{{- $_ := include "sscsi.effective" (dict "root" . "out" $v) }}
and reads $v, never .Values.

A values file written for the upstream Azure provider chart holds the driver's keys under
`secrets-store-csi-driver:` and the provider's at the top level. That block is merged over the top level the way
Helm merges a values file over a chart's defaults (maps merge; lists and scalars replace; null removes), except:
  - linux.volumes, linux.volumeMounts, imagePullSecrets: the two lists are concatenated (duplicates dropped);
  - logVerbosity: the higher of the two; logFormatJSON: true if either is.
Then linux.resources (what the provider container had) is added to linux.driver.resources, since the provider
now runs in the driver container. The checks that refuse values fail here, so every template enforces them.
*/}}
{{- define "sscsi.effective" -}}
{{- $top := .root.Values -}}
{{- $sub := index $top "secrets-store-csi-driver" | default dict -}}
{{- $out := .out -}}
{{- range $key, $value := deepCopy $top -}}
{{- if ne $key "secrets-store-csi-driver" }}{{ $_ := set $out $key $value }}{{ end -}}
{{- end -}}
{{- $_ := include "sscsi.mergeInto" (dict "dst" $out "src" (deepCopy $sub)) -}}
{{- $topLinux := $top.linux | default dict -}}
{{- $subLinux := $sub.linux | default dict -}}
{{- $linux := $out.linux -}}
{{- $_ := set $linux "volumes" (concat ($topLinux.volumes | default list) ($subLinux.volumes | default list) | uniq) -}}
{{- $_ := set $linux "volumeMounts" (concat ($topLinux.volumeMounts | default list) ($subLinux.volumeMounts | default list) | uniq) -}}
{{- $_ := set $out "imagePullSecrets" (concat ($top.imagePullSecrets | default list) ($sub.imagePullSecrets | default list) | uniq) -}}
{{- if hasKey $sub "logVerbosity" -}}
{{- $_ := set $out "logVerbosity" (max (int64 ($top.logVerbosity | default 0)) (int64 ($sub.logVerbosity | default 0))) -}}
{{- end -}}
{{- $_ := set $out "logFormatJSON" (or $top.logFormatJSON $sub.logFormatJSON | default false) -}}
{{- with $linux.resources -}}
{{- $driver := $linux.driver | default dict -}}
{{- $_ := set $linux "driver" $driver -}}
{{- $_ := set $driver "resources" (include "sscsi.addResources" (dict "a" ($driver.resources | default dict) "b" .) | fromYaml) -}}
{{- end -}}
{{- /* Refusals: honouring these silently would surprise. */ -}}
{{- if or ($top.windows | default dict).enabled ($sub.windows | default dict).enabled -}}
{{- fail "windows.enabled=true: Windows nodes are not supported by this driver (Linux only); remove windows.enabled or set it to false" -}}
{{- end -}}
{{- if $out.enableArcExtension -}}
{{- fail "enableArcExtension=true: the Azure Arc extension mode (Arc monitoring Deployment, proxy settings) is not provided by this chart; remove enableArcExtension" -}}
{{- end -}}
{{- if and (eq (toString $out.serviceAccountTokenInSecrets) "true") (not $out.tokenRequests) -}}
{{- fail "serviceAccountTokenInSecrets=true with no tokenRequests: the API server refuses the field on a CSIDriver without tokenRequests; set tokenRequests, or serviceAccountTokenInSecrets to auto or false" -}}
{{- end -}}
{{- if and (hasKey $sub "install") (not $sub.install) -}}
{{- fail "secrets-store-csi-driver.install=false: this chart is the driver, with the Azure provider built in, and cannot install the provider alone; uninstall the other driver release, then remove secrets-store-csi-driver.install" -}}
{{- end -}}
{{- $upstream := list -}}
{{- $repositories := dict "linux.image.repository" (($linux.image | default dict).repository | default "") -}}
{{- if ($linux.crds | default dict).enabled -}}
{{- $_ := set $repositories "linux.crds.image.repository" ((($linux.crds | default dict).image | default dict).repository | default "") -}}
{{- end -}}
{{- range $path, $repository := $repositories -}}
{{- if regexMatch "(^|/)(provider-azure|driver-crds)$|(^|/)(csi-)?secrets-store/driver$" $repository -}}
{{- $upstream = append $upstream (printf "%s=%s" $path $repository) -}}
{{- end -}}
{{- end -}}
{{- with $upstream -}}
{{- fail (printf "%s: an upstream driver, CRD (kubectl) or Azure provider image cannot run this chart (the driver pod and the CRD hook run this project's binary, with the Azure provider built in); remove these keys, or point them at this project's image (the chart's default linux.image) or a mirror of it" (join ", " .)) -}}
{{- end -}}
{{- $names := list "mountpoint-dir" "registration-dir" "plugin-dir" "providers-dir" -}}
{{- range $index, $dir := $linux.additionalProvidersDirs -}}{{ $names = append $names (printf "providers-dir-%d" $index) }}{{- end -}}
{{- range $linux.volumes -}}
{{- if has .name $names -}}
{{- fail (printf "linux.volumes: the volume name %q is used twice (by the chart or in both the top level and secrets-store-csi-driver.linux.volumes); rename one" .name) -}}
{{- end -}}
{{- $names = append $names .name -}}
{{- end -}}
{{- end -}}

{{/* Merges the map .src into the map .dst in place (maps merge, lists and scalars replace, null removes). */}}
{{- define "sscsi.mergeInto" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- if kindIs "invalid" $value -}}
{{- $_ := unset $dst $key -}}
{{- else if and (kindIs "map" $value) (kindIs "map" (index $dst $key)) -}}
{{- $_ := include "sscsi.mergeInto" (dict "dst" (index $dst $key) "src" $value) -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
.a + .b for two Kubernetes ResourceRequirements (YAML). Requests add up, a missing one counting as zero. A limit
is kept only when both sides set it: a missing limit means unbounded, and so is the sum.
*/}}
{{- define "sscsi.addResources" -}}
{{- $out := dict -}}
{{- $a := .a -}}
{{- $b := .b -}}
{{- range $field := list "requests" "limits" -}}
{{- $x := index $a $field | default dict -}}
{{- $y := index $b $field | default dict -}}
{{- $sum := dict -}}
{{- range $name := concat (keys $x) (keys $y) | uniq | sortAlpha -}}
{{- $both := and (hasKey $x $name) (hasKey $y $name) -}}
{{- if or $both (eq $field "requests") -}}
{{- $milli := add (include "sscsi.milli" (index $x $name | default "0") | int64) (include "sscsi.milli" (index $y $name | default "0") | int64) -}}
{{- $_ := set $sum $name (include "sscsi.quantity" (dict "name" $name "milli" $milli)) -}}
{{- end -}}
{{- end -}}
{{- with $sum }}{{ $_ := set $out $field . }}{{ end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* A Kubernetes quantity (number or string such as 250m, 0.5, 100Mi, 1G) in thousandths of its unit. */}}
{{- define "sscsi.milli" -}}
{{- $text := toString . -}}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$" $text) -}}
{{- fail (printf "linux.resources: cannot add the quantity %q to linux.driver.resources (use a plain number or one of the suffixes m, k, M, G, T, P, Ki, Mi, Gi, Ti, Pi)" $text) -}}
{{- end -}}
{{- $number := regexFind "^[0-9.]+" $text -}}
{{- $suffix := trimPrefix $number $text -}}
{{- $scale := get (dict "" 1000.0 "m" 1.0 "k" 1e6 "M" 1e9 "G" 1e12 "T" 1e15 "P" 1e18 "Ki" 1024000.0 "Mi" 1048576000.0 "Gi" 1073741824000.0 "Ti" 1099511627776000.0 "Pi" 1125899906842624000.0) $suffix -}}
{{- round (mulf (float64 $number) $scale) 0 | int64 -}}
{{- end -}}

{{/* .milli thousandths of a unit as a quantity: 250m, 2 (cpu), 228Mi, 100M, 12345. */}}
{{- define "sscsi.quantity" -}}
{{- $milli := .milli | int64 -}}
{{- if ne (mod $milli 1000 | int64) 0 -}}{{ $milli }}m
{{- else -}}
{{- $units := div $milli 1000 | int64 -}}
{{- $suffix := "" -}}
{{- $value := $units -}}
{{- if and (ne .name "cpu") (gt $units 0) -}}
{{- range $unit := list (list "Gi" 1073741824) (list "Mi" 1048576) (list "Ki" 1024) (list "G" 1000000000) (list "M" 1000000) (list "k" 1000) -}}
{{- $size := index $unit 1 | int64 -}}
{{- if and (eq $suffix "") (eq (mod $units $size | int64) 0) -}}
{{- $suffix = index $unit 0 -}}
{{- $value = div $units $size -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $value }}{{ $suffix -}}
{{- end -}}
{{- end -}}

{{/* Image reference from .image (repository, tag, digest) with .tag as the default tag; digest wins over tag. */}}
{{- define "sscsi.image" -}}
{{- $image := .image -}}
{{- if $image.digest -}}
{{ $image.repository }}@{{ $image.digest }}
{{- else -}}
{{ $image.repository }}:{{ $image.tag | default .tag }}
{{- end -}}
{{- end -}}

{{/* Image of the CRD hook: linux.crds.image, each field defaulting to the driver image's. */}}
{{- define "sscsi.crdsImage" -}}
{{ include "sscsi.imageOrDriver" (dict "image" (.v.linux.crds.image | default dict) "v" .v "root" .root) }}
{{- end -}}

{{/* Image of the sync controller: controller.image, each field defaulting to the driver image's. */}}
{{- define "sscsi.controllerImage" -}}
{{ include "sscsi.imageOrDriver" (dict "image" (.v.controller.image | default dict) "v" .v "root" .root) }}
{{- end -}}

{{/* .image (repository, tag, digest) with every field empty meaning the driver image's (linux.image). */}}
{{- define "sscsi.imageOrDriver" -}}
{{- $driver := .v.linux.image -}}
{{- $own := .image -}}
{{- if $own.digest -}}
{{ $own.repository | default $driver.repository }}@{{ $own.digest }}
{{- else if or $own.tag $own.repository -}}
{{ $own.repository | default $driver.repository }}:{{ $own.tag | default .root.Chart.AppVersion }}
{{- else -}}
{{ include "sscsi.image" (dict "image" $driver "tag" .root.Chart.AppVersion) }}
{{- end -}}
{{- end -}}

{{/*
Flags of the built-in Azure provider, one "- --flag" line each, for .azure (a builtinAzureProvider block) and the
top-level provider keys of .v; the node plugin and the sync controller pass the same ones.
*/}}
{{- define "sscsi.azureProviderArgs" -}}
{{- $azure := .azure -}}
- --builtin-azure-provider={{ $azure.enabled }}
{{- if $azure.enabled }}
- --azure-cloud-name={{ $azure.cloudName }}
{{- with $azure.keyVaultURLTemplate }}
- --azure-keyvault-url-template={{ . }}
{{- end }}
{{- with $azure.authorityHost }}
- --azure-authority-host={{ . }}
{{- end }}
{{- with $azure.imdsEndpoint }}
- --azure-imds-endpoint={{ . }}
{{- end }}
{{- with $azure.caBundle }}
- --azure-ca-bundle={{ . }}
{{- end }}
- --construct-pem-chain={{ .v.constructPEMChain }}
- --write-cert-and-key-in-separate-files={{ .v.writeCertAndKeyInSeparateFiles }}
{{- with .v.linux.customUserAgent }}
- --custom-user-agent={{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Label value app.kubernetes.io/name and app (the DaemonSet selector). */}}
{{- define "sscsi.name" -}}
{{- $sub := index .Values "secrets-store-csi-driver" | default dict -}}
{{- $sub.nameOverride | default .Values.nameOverride | default "secrets-store-csi-driver" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of the DaemonSet, its ServiceAccount and (with -upgrade-crds) the CRD hook objects. */}}
{{- define "sscsi.fullname" -}}
{{- $sub := index .Values "secrets-store-csi-driver" | default dict -}}
{{- $sub.fullnameOverride | default .Values.fullnameOverride | default (include "sscsi.name" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "sscsi.labels" -}}
{{- $v := dict }}{{- $_ := include "sscsi.effective" (dict "root" . "out" $v) -}}
app.kubernetes.io/name: {{ include "sscsi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app: {{ include "sscsi.name" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with $v.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Name of the CSIDriver object, which the sync controller reads for its token audiences. */}}
{{- define "sscsi.driverName" -}}secrets-store.csi.k8s.io{{- end -}}

{{/* Labels of the sync controller's objects: the chart's, with app (the DaemonSet selector) made its own. */}}
{{- define "sscsi.controllerLabels" -}}
{{- $labels := include "sscsi.labels" . | fromYaml -}}
{{- $_ := set $labels "app" (printf "%s-controller" (include "sscsi.name" .)) -}}
{{- $_ := set $labels "app.kubernetes.io/component" "controller" -}}
{{- toYaml $labels -}}
{{- end -}}

{{/* Selector of the sync controller's pods. */}}
{{- define "sscsi.controllerSelector" -}}
app: {{ include "sscsi.name" . }}-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
"true" when the driver registers with kubelet itself and the DaemonSet has one container (linux.builtinRegistrar
true or unset), "false" for the node-driver-registrar and livenessprobe sidecars. Takes the effective values.
*/}}
{{- define "sscsi.builtinRegistrar" -}}
{{- $builtin := index .linux "builtinRegistrar" -}}
{{- ne (toString $builtin) "false" -}}
{{- end -}}

{{/*
"true" when the CSIDriver gets spec.serviceAccountTokenInSecrets (KEP-5538: kubelet passes the tokens in
NodePublishVolumeRequest.secrets instead of the volume attributes), else "false". .v.serviceAccountTokenInSecrets
true or "true": always; false or "false": never; auto (also when unset): on Kubernetes 1.35 or newer, the first
release that knows the field, when tokenRequests is not empty (the API server refuses the field without it).
*/}}
{{- define "sscsi.tokenInSecrets" -}}
{{- $mode := index .v "serviceAccountTokenInSecrets" -}}
{{- $mode = kindIs "invalid" $mode | ternary "auto" (toString $mode) -}}
{{- if eq $mode "true" -}}
true
{{- else if and (eq $mode "auto") .v.tokenRequests (semverCompare ">=1.35.0-0" .root.Capabilities.KubeVersion.Version) -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{- define "sscsi.socketDir" -}}{{ .linux.kubeletRootDir }}/plugins/csi-secrets-store{{- end -}}
