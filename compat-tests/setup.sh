#!/usr/bin/env bash
# Installs what the optional clients of compat-tests need: kcat (apt), kafkajs and its codecs (npm, in
# compat-tests/js), the sarama and franz-go drivers (Go modules from the Go module proxy, built into
# .build/), and the Java driver with kafka-clients and kafka-streams (Maven Central, built into java/target/).
# Downloads land in the tools' own caches (Go's module and build caches, ~/.m2), outside git.
#
# Idempotent and quiet: what is already there is left alone, one line per part says what happened,
# details go to compat-tests/.build/setup.log. A part that cannot be had is reported and skipped; the
# script always exits 0, and the suite skips a client whose toolchain is missing, with the reason.
# The Python clients come with the project's test extras (pyproject.toml), not from here.
set -u
cd "$(dirname "$0")"
mkdir -p .build
LOG="$PWD/.build/setup.log"
: > "$LOG"

say() { echo "compat-tests/setup.sh: $*"; }

# -- Debian packages ---------------------------------------------------------------------------
want=()
command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1 || want+=(kcat)
command -v go >/dev/null 2>&1 || want+=(golang-go)
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)

if [ ${#want[@]} -eq 0 ]; then
    say "apt: kcat, Go and Node.js already installed"
elif ! command -v apt-get >/dev/null 2>&1; then
    say "apt: no apt-get here; not installing ${want[*]}"
else
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
    fi
    if [ "$SUDO" = "none" ]; then
        say "apt: not root and no sudo; not installing ${want[*]}"
    else
        $SUDO apt-get update -qq >>"$LOG" 2>&1
        # One at a time, so that a package this release lacks does not stop the others.
        for pkg in "${want[@]}"; do
            if DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >>"$LOG" 2>&1; then
                say "apt: installed $pkg"
            else
                say "apt: could not install $pkg (see $LOG)"
            fi
        done
    fi
fi

# -- kafkajs -------------------------------------------------------------------------------------
# npm ci in a clean clone spends most of its ~45 s compiling zstd-napi's native part (node-gyp), the same
# every time: the finished node_modules is kept in ~/.cache/kbroker (KBROKER_NODE_CACHE), one per
# package-lock.json, Node.js version and machine, written whole under a temporary name and then renamed,
# so a half copy is never used; a clone copies it (under a second).
node_cache_dir() {
    local key
    key=$({ cat js/package-lock.json; node --version; uname -m; } | sha256sum | cut -c1-16)
    echo "${KBROKER_NODE_CACHE:-$HOME/.cache/kbroker}/kafkajs-node_modules-$key"
}

if ! command -v npm >/dev/null 2>&1; then
    say "kafkajs: no npm; skipped"
elif [ -d js/node_modules/kafkajs ] && [ js/node_modules/.package-lock.json -nt js/package-lock.json ]; then
    say "kafkajs: already installed"
else
    cached=$(node_cache_dir)
    how=""
    if [ -d "$cached/node_modules/kafkajs" ] && rm -rf js/node_modules && cp -a "$cached/node_modules" js/ \
            && touch js/node_modules/.package-lock.json; then
        how="copied from $cached"
    # kafkajs-lz4 and zstd-napi are optional dependencies with native parts (node-gyp and a C
    # compiler); when they do not build, kafkajs runs without lz4 or zstd and the suite skips those.
    elif (cd js && npm ci --no-audit --no-fund --loglevel=error >>"$LOG" 2>&1); then
        how="npm ci"
    fi
    if [ -n "$how" ]; then
        codecs=$(cd js && node admin.js '{"op":"codecs"}' 2>>"$LOG" | sed -n 's/.*"result":\[\(.*\)\].*/\1/p' | tr -d '"')
        # Kept only with every codec built: a native part that failed this time is tried again next time.
        if [ "$how" = "npm ci" ] && [ "$codecs" = "none,gzip,snappy,lz4,zstd" ]; then
            tmp="$cached.tmp.$$"
            if mkdir -p "$tmp" && cp -a js/node_modules "$tmp/" && mv -T "$tmp" "$cached" 2>>"$LOG"; then
                how="npm ci, kept in $cached"
            fi
            rm -rf "$tmp"
        fi
        say "kafkajs: installed, $how (codecs: ${codecs:-?})"
    else
        say "kafkajs: npm ci failed (see $LOG); skipped"
    fi
fi

# -- the Go drivers (sarama, franz-go) and the Java driver, built side by side ----------------------
# The first build is mostly compiling (sarama about 1.5 minutes of CPU, franz-go 1, mvn package 1);
# later runs find the binaries and the jar newer than their sources and do nothing. Each build holds the
# lock the suite's own on-demand build takes (kcompat/clients/gomod.py, java.py), so that `make test` can
# run this beside the unit tests, whose Java tests wait for the jar instead of building it a second time.
go_driver() {
    local driver=$1
    local bin=.build/$driver-driver
    if ! command -v go >/dev/null 2>&1; then
        say "$driver: no Go; skipped"
        return
    fi
    exec 9>".build/$driver.lock"
    flock 9
    if [ -x "$bin" ] && [ "$bin" -nt go/$driver/main.go ] && [ "$bin" -nt go/$driver/go.mod ] \
            && [ "$bin" -nt go/$driver/go.sum ] && [ "$bin" -nt go/driver/driver.go ]; then
        say "$driver: driver already built"
    # Module mode: go.mod/go.sum pin the client; modules come from the Go module proxy once.
    elif (cd go/$driver && GOFLAGS= GOTOOLCHAIN=local CGO_ENABLED=0 go build -o ../../$bin.tmp . >>"$LOG" 2>&1) \
            && mv $bin.tmp $bin; then
        say "$driver: driver built"
    else
        say "$driver: the driver did not build (see $LOG); skipped"
    fi
}

java_driver() {
    if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
        say "java: no Java or no Maven; skipped"
        return
    fi
    mkdir -p java/target
    exec 9>java/target/build.lock
    flock 9
    if [ -f java/target/kcompat-java.jar ] && [ java/target/kcompat-java.jar -nt java/pom.xml ] \
            && [ java/target/kcompat-java.jar -nt java/src/main/java/kcompat/Driver.java ] && [ -d java/target/lib ]; then
        say "java: driver already built"
    elif (cd java && mvn -q -B package >>"$LOG" 2>&1) && touch java/target/kcompat-java.jar; then
        say "java: driver built (kafka-clients $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' java/pom.xml))"
    else
        say "java: mvn package failed (see $LOG); skipped"
    fi
}

go_driver sarama &
go_driver franz &
java_driver &
wait

exit 0
