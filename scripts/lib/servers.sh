# Provide the pinned servers and tools the test suite runs against; sourced by scripts/test.sh.
#
#   provide_servers      Loki, Prometheus 3.5 LTS + promtool, Alertmanager + amtool (versions: scripts/servers.env)
#   provide_prometheus2  the distribution's Prometheus 2.x + Alertmanager (Debian bookworm: 2.42 with 0.25)
#
# Each binary is taken from the first of these that has it, and the run says which:
#   1. an explicit <NAME>_BIN environment variable;
#   2. the cache, ${XDG_CACHE_HOME:-$HOME/.cache}/llmmetrics/servers/<name>-<version>/;
#   3. a download into that cache: the Debian package of that exact upstream version from $DEBIAN_SUITE,
#      fetched with `apt-get download` through a private sources list (the system's sources are never
#      changed and nothing is installed) and unpacked with `dpkg -x`; else the upstream release archive,
#      checked against a pinned sha256 or the checksum file its release publishes (below).
#      SERVERS_OFFLINE=1 skips both downloads (the tests of this script use it: they never leave loopback).
# Every binary's `--version` must report the pinned version. The chosen paths are exported as <NAME>_BIN,
# which tests/support/binaries.py reads. Whatever cannot be provided is listed with how to provide it, and
# the run stops.

SERVERS_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/llmmetrics/servers"
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# variable  file in the cache  cache directory  version  Debian package  path in the package
_SERVER_BINARIES=(
    "LOKI_BIN         loki          loki-$LOKI_VERSION                  $LOKI_VERSION          -                       -"
    "PROMETHEUS_BIN   prometheus    prometheus-$PROMETHEUS_VERSION      $PROMETHEUS_VERSION    prometheus              usr/bin/prometheus"
    "PROMTOOL_BIN     promtool      promtool-$PROMETHEUS_VERSION        $PROMETHEUS_VERSION    promtool                usr/bin/promtool"
    "ALERTMANAGER_BIN alertmanager  alertmanager-$ALERTMANAGER_VERSION  $ALERTMANAGER_VERSION  prometheus-alertmanager usr/bin/prometheus-alertmanager"
    "AMTOOL_BIN       amtool        alertmanager-$ALERTMANAGER_VERSION  $ALERTMANAGER_VERSION  prometheus-alertmanager usr/bin/amtool"
)

# Upstream release archives (cache directory, Debian architecture, URL, sha256, members as
# path-in-archive=file-in-cache). The sha256 is either pinned here, where a published checksum could be
# checked, or `sums:<URL>`: the checksum file the release publishes beside its archives, fetched and read for
# this archive's name (it guards the download, not the release itself). Loki has no Debian package, so its
# release archive is the download route where the machine can reach it.
_UPSTREAM_ARCHIVES=(
    "loki-$LOKI_VERSION amd64 https://github.com/grafana/loki/releases/download/v$LOKI_VERSION/loki-linux-amd64.zip sums:https://github.com/grafana/loki/releases/download/v$LOKI_VERSION/SHA256SUMS loki-linux-amd64=loki"
    "prometheus-$PROMETHEUS_VERSION amd64 https://github.com/prometheus/prometheus/releases/download/v$PROMETHEUS_VERSION/prometheus-$PROMETHEUS_VERSION.linux-amd64.tar.gz sums:https://github.com/prometheus/prometheus/releases/download/v$PROMETHEUS_VERSION/sha256sums.txt prometheus-$PROMETHEUS_VERSION.linux-amd64/prometheus=prometheus"
    "promtool-$PROMETHEUS_VERSION amd64 https://github.com/prometheus/prometheus/releases/download/v$PROMETHEUS_VERSION/prometheus-$PROMETHEUS_VERSION.linux-amd64.tar.gz sums:https://github.com/prometheus/prometheus/releases/download/v$PROMETHEUS_VERSION/sha256sums.txt prometheus-$PROMETHEUS_VERSION.linux-amd64/promtool=promtool"
    "alertmanager-0.33.1 amd64 https://github.com/prometheus/alertmanager/releases/download/v0.33.1/alertmanager-0.33.1.linux-amd64.tar.gz 93d802cba6a8d27239d747ce117df7648d326ab67394e32247540b030e9842ba alertmanager-0.33.1.linux-amd64/alertmanager=alertmanager,alertmanager-0.33.1.linux-amd64/amtool=amtool"
)

_server_problems=()
_server_report=()

# The x.y.z a server or tool reports with --version ("prometheus, version 3.5.3+ds1 (branch: ...)").
binary_version() {
    "$1" --version 2>&1 | sed -nE 's/.*version v?([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' | head -n 1
}

_is_pinned() {  # <path> <version>
    [ -f "$1" ] && [ -x "$1" ] && [ "$(binary_version "$1")" = "$2" ]
}

_note() {  # <variable> <path> <how it was found>
    _server_report+=("$(printf '  %-18s %-8s %s  (%s)' "$1" "$(binary_version "$2")" "$2" "$3")")
}

provide_servers() {
    local row variable file dir version package member path missing_packages=() pending=()
    for row in "${_SERVER_BINARIES[@]}"; do
        read -r variable file dir version package member <<<"$row"
        path="$SERVERS_CACHE/$dir/$file"
        if [ -n "${!variable:-}" ]; then
            if _is_pinned "${!variable}" "$version"; then
                _note "$variable" "${!variable}" "from $variable"
            else
                _server_problems+=("$variable=${!variable} is not an executable reporting version $version (it reports '$(binary_version "${!variable}" 2>/dev/null)')")
            fi
            continue
        fi
        if _is_pinned "$path" "$version"; then
            export "$variable=$path"
            _note "$variable" "$path" "cache: $(cat "$SERVERS_CACHE/$dir/SOURCE" 2>/dev/null || echo 'placed by hand')"
            continue
        fi
        pending+=("$row")
        [ "$package" = - ] || missing_packages+=("$package")
    done
    ((${#pending[@]})) || return 0

    local errors debian_error="" upstream_error="" why_debian tried_dir=""
    errors="$(mktemp)"
    if [ "${SERVERS_OFFLINE:-0}" = 1 ]; then
        debian_error="downloads are off (SERVERS_OFFLINE=1)"
    elif ((${#missing_packages[@]})) && ! _debian_fetch "${missing_packages[@]}" 2>"$errors"; then
        debian_error="$(tail -n 1 "$errors")"
    fi
    for row in "${pending[@]}"; do
        read -r variable file dir version package member <<<"$row"
        path="$SERVERS_CACHE/$dir/$file"
        if ! _is_pinned "$path" "$version" && [ "$dir" != "${tried_dir:-}" ]; then
            tried_dir="$dir"  # the binaries of one archive share one attempt
            if [ "${SERVERS_OFFLINE:-0}" = 1 ]; then
                upstream_error="downloads are off (SERVERS_OFFLINE=1)"
            else
                upstream_error=""
                _upstream_fetch "$dir" 2>"$errors" || upstream_error="$(tail -n 1 "$errors")"
            fi
        fi
        if _is_pinned "$path" "$version"; then
            export "$variable=$path"
            _note "$variable" "$path" "downloaded: $(cat "$SERVERS_CACHE/$dir/SOURCE")"
        else
            why_debian="${debian_error:-Debian has no package of that version}"
            [ "$package" != - ] || why_debian="Debian has no package of it"
            _server_problems+=("$file $version: not in the cache ($path); $why_debian; upstream: $upstream_error.
    Provide it with $variable=/path/to/$file, or put the binary at $path")
        fi
    done
    rm -f "$errors"
}

# The Debian mirror the system already uses (its sources name one for the system's own suites), or DEBIAN_MIRROR.
_debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local site
    site="$(apt-get indextargets --no-release-info --format '$(SITE) $(COMPONENT)' 2>/dev/null \
        | awk '$2 == "main" && $1 ~ /\/debian\/?$/ { print $1; exit }')"
    [ -n "$site" ] || { echo "the system's apt sources name no Debian mirror: set DEBIAN_MIRROR to one" >&2; return 1; }
    echo "$site"
}

# apt-get/apt-cache with a private sources list, lists and cache under $SERVERS_CACHE/apt.
_private_apt() {
    local tool="$1"
    shift
    "$tool" -o Dir::Etc::sourcelist="$SERVERS_CACHE/apt/sources.list" -o Dir::Etc::sourceparts=- \
        -o Dir::State::Lists="$SERVERS_CACHE/apt/lists" -o Dir::Cache="$SERVERS_CACHE/apt/cache" \
        -o APT::Sandbox::User="$(id -un)" -qq "$@"
}

# Download the given Debian packages (each at the pinned upstream version) from $DEBIAN_SUITE and unpack
# their binaries into the cache. Errors go to stderr, one line.
_debian_fetch() {
    [ -r "$DEBIAN_KEYRING" ] || {
        echo "no $DEBIAN_KEYRING to check Debian's signatures (install the package debian-archive-keyring)" >&2
        return 1
    }
    command -v apt-get >/dev/null && command -v dpkg >/dev/null || { echo "no apt-get/dpkg on this machine" >&2; return 1; }
    local mirror
    mirror="$(_debian_mirror)" || return 1
    mkdir -p "$SERVERS_CACHE/apt/lists/partial" "$SERVERS_CACHE/apt/cache/archives/partial"
    echo "deb [signed-by=$DEBIAN_KEYRING] $mirror $DEBIAN_SUITE main" >"$SERVERS_CACHE/apt/sources.list"
    echo "downloading $(printf "%s\n" "$@" | sort -u | tr "\n" " ")from Debian $DEBIAN_SUITE (private package list under $SERVERS_CACHE/apt; the system's sources are not changed)"
    _private_apt apt-get update >/dev/null 2>"$SERVERS_CACHE/apt/update.log" || {
        echo "apt-get update of $DEBIAN_SUITE from $mirror failed: $(tail -n 1 "$SERVERS_CACHE/apt/update.log")" >&2
        return 1
    }
    local work package upstream version deb row variable file dir pinned pkg member
    work="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    for package in $(printf '%s\n' "$@" | sort -u); do
        upstream="$(_pinned_version_of_package "$package")"
        # newest Debian revision of the pinned upstream version (e.g. 3.5.3+ds1-6 for 3.5.3)
        version="$(_private_apt apt-cache madison "$package" | awk -F' *[|] *' '{ print $2 }' \
            | grep -E "^([0-9]+:)?${upstream//./\\.}([+~-]|$)" | sort -V | tail -n 1)"
        [ -n "$version" ] || { echo "$DEBIAN_SUITE has no $package $upstream" >&2; return 1; }
        (cd "$work" && _private_apt apt-get download "$package=$version" >/dev/null) \
            || { echo "apt-get download $package=$version failed" >&2; return 1; }
        deb="$(ls "$work"/"${package}"_*.deb)"
        dpkg -x "$deb" "$work/root-$package"
        for row in "${_SERVER_BINARIES[@]}"; do
            read -r variable file dir pinned pkg member <<<"$row"
            [ "$pkg" = "$package" ] || continue
            mkdir -p "$SERVERS_CACHE/$dir"
            install -m 0755 "$work/root-$package/$member" "$SERVERS_CACHE/$dir/$file"
            echo "Debian $DEBIAN_SUITE package $package $version (sha256 $(sha256sum "$deb" | cut -c1-16)…)" \
                >"$SERVERS_CACHE/$dir/SOURCE"
        done
    done
}

_pinned_version_of_package() {
    local row variable file dir version package member
    for row in "${_SERVER_BINARIES[@]}"; do
        read -r variable file dir version package member <<<"$row"
        [ "$package" = "$1" ] && { echo "$version"; return; }
    done
}

# Download and check the upstream release archive recorded for cache directory $1, unpack its binaries.
_upstream_fetch() {
    local row dir arch url sha256 members found=""
    for row in "${_UPSTREAM_ARCHIVES[@]}"; do
        read -r dir arch url sha256 members <<<"$row"
        [ "$dir" = "$1" ] && [ "$arch" = "$(dpkg --print-architecture 2>/dev/null || uname -m)" ] && { found=1; break; }
    done
    [ -n "$found" ] || { echo "no upstream release archive recorded for $1 on this architecture" >&2; return 1; }
    command -v curl >/dev/null || { echo "no curl to download $url" >&2; return 1; }
    local work member
    work="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" RETURN
    local archive="$work/${url##*/}"
    curl -fsSL --connect-timeout 20 --max-time 300 -o "$archive" "$url" 2>"$work/curl.log" \
        || { echo "cannot download $url: $(tail -n 1 "$work/curl.log")" >&2; return 1; }
    if [[ "$sha256" == sums:* ]]; then
        curl -fsSL --connect-timeout 20 --max-time 60 -o "$work/sums" "${sha256#sums:}" 2>"$work/curl.log" \
            || { echo "cannot download ${sha256#sums:}: $(tail -n 1 "$work/curl.log")" >&2; return 1; }
        sha256="$(awk -v name="${url##*/}" '$2 == name || $2 == "*" name { print $1; exit }' "$work/sums")"
        [ -n "$sha256" ] || { echo "${url##*/} is not listed in its release's checksums" >&2; return 1; }
    fi
    echo "$sha256  $archive" | sha256sum -c --status \
        || { echo "$url does not match its published sha256 $sha256" >&2; return 1; }
    case "$archive" in
        *.zip) python3 -m zipfile -e "$archive" "$work" ;;
        *) tar -xzf "$archive" -C "$work" ;;
    esac
    mkdir -p "$SERVERS_CACHE/$dir"
    for member in ${members//,/ }; do
        install -m 0755 "$work/${member%%=*}" "$SERVERS_CACHE/$dir/${member#*=}"
    done
    echo "upstream release archive $url (sha256 $sha256 checked)" >"$SERVERS_CACHE/$dir/SOURCE"
}

# The Prometheus 2.x line: PROMETHEUS2_BIN etc., else the distribution's packages (installed by the caller).
provide_prometheus2() {
    local entry variable names name found how
    for entry in PROMETHEUS2_BIN:prometheus PROMTOOL2_BIN:promtool \
                 ALERTMANAGER2_BIN:prometheus-alertmanager,alertmanager AMTOOL2_BIN:amtool; do
        variable="${entry%%:*}"
        names="${entry#*:}"
        found="${!variable:-}"
        how="from $variable"
        if [ -z "$found" ]; then
            how="the system's ${names%%,*}"
            for name in ${names//,/ }; do
                found="$(command -v "$name" || true)"
                [ -z "$found" ] || break
            done
        fi
        if [ -z "$found" ] || [ ! -x "$found" ]; then
            _server_problems+=("$variable: no ${names%%,*} found (install the distribution's packages prometheus and prometheus-alertmanager, or set $variable)")
        elif [[ "$variable" == PROM* && "$(binary_version "$found")" != "$PROMETHEUS2_MAJOR".* ]]; then
            _server_problems+=("$variable: $found reports version '$(binary_version "$found")', not $PROMETHEUS2_MAJOR.x (set $variable to a Prometheus $PROMETHEUS2_MAJOR.x binary, e.g. from Debian bookworm's package prometheus)")
        else
            export "$variable=$found"
            _note "$variable" "$found" "$how"
        fi
    done
}

# Print what was chosen; fail naming everything that is missing.
report_servers() {
    echo "servers and tools for the tests (pinned in scripts/servers.env):"
    printf '%s\n' "${_server_report[@]}"
    if ((${#_server_problems[@]})); then
        echo >&2
        echo "cannot run the tests: these servers or tools are missing" >&2
        printf '  - %s\n' "${_server_problems[@]}" >&2
        echo "docs/testing.md says how to provide them offline." >&2
        return 1
    fi
}
