#!/usr/bin/env bash
# arm64-check: run the board runtime (edge_runtime + a TFLite interpreter, no torch, no TensorFlow)
# on emulated 64-bit ARM and compare its outputs with the x86 outputs of the same model.
#
#   scripts/arm64-check.sh [MODEL]          # or: make arm64-check [MODEL=...]
#
# MODEL defaults to models/denoise_int8.tflite; while that file does not exist the tiny int8 test
# fixture tests/data/int8.tflite is used instead (with a notice).
#
# What it does (as root; a separate job, not part of the test suite):
#   1. Debian's debootstrap + qemu-user-static (apt-get installs them if missing) build a Debian 12
#      bookworm arm64 root file system, cached in $ARM64_CACHE (default /work/cache/arm64).
#   2. Inside it, under emulation: one venv per runtime with Python 3.11 (bookworm's python3) and,
#      from PyPI, numpy, Pillow and the aarch64 interpreter wheel:
#        litert: the project wheel with the `edge` extra (ai-edge-litert), as docs/board-install.md says
#        tflite: tflite-runtime 2.14.0 (numpy<2) + the project wheel without extras
#   3. Runs `edge-restore` on the sample images, plus a raw-tile probe, on aarch64 and on the x86
#      host with the same interpreter, and prints the ARM-vs-x86 agreement (identical or within one
#      int8 step on >= 99.9% of the values).
# The rootfs and venvs are reused: a second run only reinstalls the project wheel and reruns.
#
# Environment:
#   ARM64_CACHE      cache folder (default /work/cache/arm64); rootfs in $ARM64_CACHE/rootfs
#   ARM64_RUNTIMES   runtimes to test, space-separated (default "litert tflite")
#   ARM64_GATE       runtimes whose ARM-vs-x86 agreement decides PASS/FAIL (default "litert": what the
#                    `edge` extra installs on 64-bit boards). tflite-runtime 2.14's own int8 kernels
#                    differ between ARM and x86 by a step here and there, which deep models compound
#                    (see docs/board-install.md): its figure is printed, marked "not gating".
#   ARM64_MODE       auto | binfmt | proot (default auto: binfmt_misc if it can be used, else proot)
#   ARM64_MIRROR     Debian mirror URL (default: the host's own bookworm mirror from /etc/apt/sources*)
#   ARM64_CA_BUNDLE  CA bundle for pip inside the rootfs (default: $PIP_CERT, pip's global.cert, or the
#                    host's /etc/ssl/certs/ca-certificates.crt, so a TLS-inspecting proxy works inside too)
#   ARM64_REBUILD=1  delete and rebuild the rootfs
#   ARM64_THREADS    interpreter threads on both sides (default 2)
#   ARM64_QEMU_CPU   emulated CPU: cortex-a72 (Raspberry Pi 4, default), cortex-a76 (Pi 5),
#                    cortex-a53 (Pi 3 / Zero 2 W) or max
#   PYTHON           x86 Python with edge_runtime's deps and an interpreter (default .venv/bin/python)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ARM64_CACHE:-/work/cache/arm64}
ROOTFS=$CACHE/rootfs
SUITE=bookworm
MIRROR=${ARM64_MIRROR:-}
RUNTIMES=${ARM64_RUNTIMES:-litert tflite}
GATE=${ARM64_GATE:-litert}
MODE=${ARM64_MODE:-auto}
THREADS=${ARM64_THREADS:-2}
QEMU_CPU_MODEL=${ARM64_QEMU_CPU:-cortex-a72}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}  # the host side runs edge_runtime from the working tree
DEFAULT_MODEL=models/denoise_int8.tflite
FIXTURE_MODEL=tests/data/int8.tflite
# Interpreter requirements (aarch64 and x86_64 wheels on PyPI for CPython 3.11).
LITERT_SPEC=$("$PYTHON" - "$REPO/pyproject.toml" <<'EOF' 2>/dev/null || echo "ai-edge-litert>=1.2"
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r'"(ai-edge-litert[^";]*)', text)
print(m.group(1) if m else "ai-edge-litert>=1.2")
EOF
)
TFLITE_SPEC="tflite-runtime==2.14.0"
STAMPS=.edge-restore
START=$(date +%s)

say() { printf '[arm64-check %4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
die() { printf 'arm64-check: error: %s\n' "$*" >&2; exit 1; }
elapsed() { echo $(( $(date +%s) - $1 ))s; }

# ----------------------------------------------------------------------------------- model
MODEL_ARG=${1:-${MODEL:-}}
cd "$REPO"
if [ -n "$MODEL_ARG" ]; then
    MODEL=$MODEL_ARG
    [ -f "$MODEL" ] || die "model not found: $MODEL"
elif [ -f "$DEFAULT_MODEL" ]; then
    MODEL=$DEFAULT_MODEL
else
    MODEL=$FIXTURE_MODEL
    echo "NOTICE: the shipped model $DEFAULT_MODEL does not exist yet; using the int8 test fixture $FIXTURE_MODEL instead"
fi
MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")

# ----------------------------------------------------------------------------------- tools
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it), e.g. sudo make arm64-check"
need_pkgs=()
command -v debootstrap >/dev/null || need_pkgs+=(debootstrap)
command -v qemu-aarch64-static >/dev/null || need_pkgs+=(qemu-user-static)
command -v update-binfmts >/dev/null || need_pkgs+=(binfmt-support)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${need_pkgs[*]} and no apt-get to install them"
    say "installing from Debian: ${need_pkgs[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null
fi
QEMU=$(command -v qemu-aarch64-static)

# The host's Debian mirror (deb822 .sources or one-line sources.list), so apt's mirror/proxy setup applies.
host_mirror() {
    grep -qs '^ID=debian' /etc/os-release || return 0
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && awk -v suite="$SUITE" 'BEGIN { RS = "" }
            $0 ~ ("Suites:[^\n]*[ \t]" suite "([ \t]|\n|$)") && $0 !~ /security/ {
                if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { u = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit }
            }' "$f"
    done | head -1
    awk -v suite="$SUITE" '$1 == "deb" && $0 !~ /security/ {
            for (i = 2; i < NF; i++) if ($i ~ /^(https?|ftp):/ && $(i + 1) == suite) { print $i; exit } }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1
    return 0
}
[ -n "$MIRROR" ] || MIRROR=$(host_mirror 2>/dev/null | head -1 || true)
CA_BUNDLE=${ARM64_CA_BUNDLE:-${PIP_CERT:-$("$PYTHON" -m pip config get global.cert 2>/dev/null || true)}}
[ -n "$CA_BUNDLE" ] || CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -f "$CA_BUNDLE" ] || CA_BUNDLE=

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -n 9 || die "another arm64-check is running (lock $CACHE/.lock)"

# ------------------------------------------------------------------------------- emulation
# binfmt_misc lets the kernel run aarch64 ELF files through qemu, so chroot, dpkg and pip's
# subprocesses all work. Without it (some containers cannot mount binfmt_misc) proot -q runs every
# exec through qemu instead. Calling qemu-aarch64-static by hand only covers the first process:
# debootstrap's second stage and pip start many more, so that is not an option.
binfmt_ready() {
    local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
    [ -r "$entry" ] && head -1 "$entry" | grep -q enabled
}
enable_binfmt() {
    binfmt_ready && return 0
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || return 1
    fi
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    binfmt_ready
}
case "$MODE" in
    auto)
        if enable_binfmt; then MODE=binfmt
        else
            say "binfmt_misc is not usable here; falling back to proot"
            command -v proot >/dev/null || { apt-get install -y -q proot >/dev/null || die "no binfmt_misc and no proot"; }
            MODE=proot
        fi ;;
    binfmt) enable_binfmt || die "binfmt_misc with qemu-aarch64 is not available (try ARM64_MODE=proot)" ;;
    proot) command -v proot >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q proot >/dev/null || die "cannot install proot"; } ;;
    *) die "ARM64_MODE must be auto, binfmt or proot" ;;
esac

CLEAN_ENV=(env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
           PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1)
[ -n "$CA_BUNDLE" ] && CLEAN_ENV+=(PIP_CERT=/etc/edge-restore-host-ca.crt)
CLEAN_ENV+=(QEMU_CPU="$QEMU_CPU_MODEL")  # read by qemu-aarch64 for every emulated process

# qemu-user 7.2 does not emulate /proc/cpuinfo for aarch64: guests see the host's x86 one, and
# ai-edge-litert's CPU detection crashes on it (SIGSEGV in allocate_tensors). A board has an ARM
# /proc/cpuinfo, so the rootfs gets one for the emulated CPU, bind-mounted over /proc/cpuinfo.
CPUINFO=/etc/edge-restore/cpuinfo
write_cpuinfo() {
    local part features i n
    n=$(nproc)
    case "$QEMU_CPU_MODEL" in
        cortex-a53) part=0xd03; BOARD="Raspberry Pi 3 / Zero 2 W"; features="fp asimd evtstrm crc32 cpuid" ;;
        cortex-a76) part=0xd0b; BOARD="Raspberry Pi 5"
                    features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
        *) part=0xd08; BOARD="Raspberry Pi 4"; features="fp asimd evtstrm crc32 cpuid" ;;
    esac
    mkdir -p "$ROOTFS/etc/edge-restore"
    for ((i = 0; i < n; i++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 3\n\n' \
            "$i" "$features" "$part"
    done > "$ROOTFS$CPUINFO"
    printf 'Model\t\t: %s (emulated by qemu-user)\n' "$BOARD" >> "$ROOTFS$CPUINFO"
}
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!v:-}" ] && CLEAN_ENV+=("$v=${!v}")
done

# Run a command inside the rootfs, in a private mount namespace (its /proc, /sys and /dev/shm
# mounts vanish with it: nothing to unmount, nothing of the host's /dev bound into the cache).
in_root() {
    if [ "$MODE" = proot ]; then
        local fake=()
        [ -f "$ROOTFS$CPUINFO" ] && fake=(-b "$ROOTFS$CPUINFO:/proc/cpuinfo")
        proot -0 -q "$QEMU" -r "$ROOTFS" -b /proc -b /sys -b /dev "${fake[@]}" -w / "${CLEAN_ENV[@]}" "$@"
    else
        unshare --mount --propagation private -- /bin/sh -c '
            root=$1; shift
            mount -t proc proc "$root/proc"
            [ -f "$root'"$CPUINFO"'" ] && mount --bind "$root'"$CPUINFO"'" "$root/proc/cpuinfo"
            mount -t sysfs sysfs "$root/sys" 2>/dev/null || true
            mkdir -p "$root/dev/shm" && mount -t tmpfs -o mode=1777 shm "$root/dev/shm" 2>/dev/null || true
            exec chroot "$root" "$@"' sh "$ROOTFS" "${CLEAN_ENV[@]}" "$@"
    fi
}

safe_remove_rootfs() {
    [ -d "$ROOTFS" ] || return 0
    if grep -q " $ROOTFS/" /proc/mounts; then die "something is mounted under $ROOTFS; unmount it first"; fi
    rm -rf --one-file-system "$ROOTFS"
}

# ---------------------------------------------------------------------------------- rootfs
say "model: $MODEL"
say "cache: $CACHE (mode: $MODE, qemu: $("$QEMU" --version | head -1))"
[ "${ARM64_REBUILD:-0}" = 1 ] && { say "ARM64_REBUILD=1: removing the cached rootfs"; safe_remove_rootfs; }
if [ ! -f "$ROOTFS/$STAMPS/rootfs.ok" ]; then
    [ -n "$MIRROR" ] || die "no Debian $SUITE mirror found in the host's apt sources; set ARM64_MIRROR"
    t=$(date +%s)
    safe_remove_rootfs
    mkdir -p "$ROOTFS" "$CACHE/debs"
    say "debootstrap stage 1: Debian $SUITE arm64 from ${ARM64_MIRROR:-the mirror of the host apt sources} (packages cached in $CACHE/debs)"
    unshare --mount --propagation private -- debootstrap --foreign --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,ca-certificates --cache-dir="$CACHE/debs" \
        "$SUITE" "$ROOTFS" "$MIRROR" > "$CACHE/debootstrap-1.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap-1.log"; die "debootstrap stage 1 failed (log: $CACHE/debootstrap-1.log)"; }
    install -m 0755 "$QEMU" "$ROOTFS/usr/bin/qemu-aarch64-static"
    say "debootstrap stage 2 under emulation (slow: several minutes)"
    in_root /debootstrap/debootstrap --second-stage > "$CACHE/debootstrap-2.log" 2>&1 \
        || { tail -20 "$CACHE/debootstrap-2.log"; die "debootstrap stage 2 failed (log: $CACHE/debootstrap-2.log)"; }
    in_root /bin/sh -c 'apt-get clean; rm -rf /var/lib/apt/lists/*' || true
    mkdir -p "$ROOTFS/$STAMPS"
    date -u +%FT%TZ > "$ROOTFS/$STAMPS/rootfs.ok"
    say "rootfs built in $(elapsed "$t") ($(du -sh --one-file-system "$ROOTFS" | cut -f1))"
else
    say "rootfs: cached (built $(cat "$ROOTFS/$STAMPS/rootfs.ok"))"
fi
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
write_cpuinfo
[ -n "$CA_BUNDLE" ] && cp -L "$CA_BUNDLE" "$ROOTFS/etc/edge-restore-host-ca.crt"
say "inside: $(in_root /bin/sh -c 'echo "$(uname -m), Debian $(cat /etc/debian_version), $(python3 --version)"'), emulated CPU $QEMU_CPU_MODEL ($BOARD class)"

# ------------------------------------------------------------------------------- the wheel
# Built from a copy of the working tree (the project's pure-Python wheel; nothing is written to the repo).
t=$(date +%s)
BUILD=$(mktemp -d "$CACHE/wheel.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT
cp -r pyproject.toml edge_runtime train export "$BUILD/"
[ -f README.md ] && cp README.md "$BUILD/"
find "$BUILD" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$BUILD/dist" "$BUILD" >"$BUILD/wheel.log" 2>&1 \
    || { cat "$BUILD/wheel.log"; die "building the project wheel failed"; }
WHEEL=$(ls "$BUILD"/dist/edge_restore-*.whl)
mkdir -p "$ROOTFS/opt/wheels"
rm -f "$ROOTFS"/opt/wheels/edge_restore-*.whl
cp "$WHEEL" "$ROOTFS/opt/wheels/"
WHEEL_IN=/opt/wheels/$(basename "$WHEEL")
say "project wheel: $(basename "$WHEEL") ($(elapsed "$t"))"

# ---------------------------------------------------------------------------------- venvs
venv_spec() {
    case "$1" in
        litert) echo "$WHEEL_IN[edge]  # $LITERT_SPEC" ;;
        tflite) echo "numpy<2 Pillow $TFLITE_SPEC + $WHEEL_IN" ;;
        *) die "unknown runtime $1 (litert or tflite)" ;;
    esac
}
for rt in $RUNTIMES; do
    venv=/opt/venv-$rt
    spec=$(venv_spec "$rt" | sed "s#$WHEEL_IN#edge_restore-wheel#g")
    if [ "$(cat "$ROOTFS/$STAMPS/venv-$rt.ok" 2>/dev/null)" != "$spec" ]; then
        t=$(date +%s)
        say "venv $venv: installing $spec from PyPI under emulation"
        rm -rf "${ROOTFS:?}$venv"
        case "$rt" in
            litert) cmd="python3 -m venv $venv && $venv/bin/pip install -q '$WHEEL_IN[edge]'" ;;
            tflite) cmd="python3 -m venv $venv && $venv/bin/pip install -q 'numpy<2' Pillow '$TFLITE_SPEC' && $venv/bin/pip install -q '$WHEEL_IN'" ;;
        esac
        in_root /bin/sh -c "$cmd" > "$CACHE/venv-$rt.log" 2>&1 \
            || { tail -20 "$CACHE/venv-$rt.log"; die "installing the $rt venv failed (log: $CACHE/venv-$rt.log)"; }
        echo "$spec" > "$ROOTFS/$STAMPS/venv-$rt.ok"
        say "venv $venv ready in $(elapsed "$t")"
    else
        # Cached venv: only the project itself is reinstalled (the current working tree's code).
        t=$(date +%s)
        in_root "$venv/bin/pip" install -q --no-deps --force-reinstall "$WHEEL_IN" > "$CACHE/venv-$rt.log" 2>&1 \
            || { tail -20 "$CACHE/venv-$rt.log"; die "reinstalling the project into $venv failed"; }
        say "venv $venv: cached; project wheel reinstalled in $(elapsed "$t")"
    fi
done

# -------------------------------------------------------------------------------- the runs
WORK_IN=/work/arm64-check
WORK=$ROOTFS$WORK_IN
rm -rf "$WORK"
mkdir -p "$WORK/model"
cp "$MODEL" "$WORK/model/"
MODEL_IN=$WORK_IN/model/$(basename "$MODEL")
cp scripts/arm64_compare.py "$WORK/"
cat > "$WORK/board_env.py" <<'EOF'
import importlib.util, platform, sys
from importlib import metadata
heavy = [m for m in ("torch", "tensorflow", "cv2", "onnxruntime") if importlib.util.find_spec(m)]
print(f"python {platform.python_version()} on {platform.machine()}; torch/tensorflow/cv2/onnxruntime importable: {heavy or 'none'}")
print("installed: " + ", ".join(sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())))
sys.exit(1 if heavy else 0)
EOF
"$PYTHON" scripts/arm64_compare.py inputs --sample edge_runtime/samples/sample_noisy.png --out "$WORK/inputs" >/dev/null

# x86_64 references, like for like: the same interpreter as each aarch64 venv. ai_edge_litert from the
# host's Python ($PYTHON), tflite-runtime 2.14 from a host venv in the cache (x86_64 wheel from PyPI).
x86_python() {
    case "$1" in
        litert) echo "$PYTHON" ;;
        tflite) echo "$CACHE/x86-venv-tflite/bin/python" ;;
    esac
}
for rt in $RUNTIMES; do
    t=$(date +%s)
    xpy=$(x86_python "$rt")
    if [ "$rt" = tflite ] && [ "$(cat "$CACHE/x86-venv-tflite/.ok" 2>/dev/null)" != "$TFLITE_SPEC" ]; then
        rm -rf "$CACHE/x86-venv-tflite"
        { "$PYTHON" -m venv "$CACHE/x86-venv-tflite" && "$xpy" -m pip install -q "numpy<2" Pillow "$TFLITE_SPEC"; } \
            > "$CACHE/x86-venv-tflite.log" 2>&1 || { tail -20 "$CACHE/x86-venv-tflite.log"; die "x86 tflite-runtime venv failed"; }
        echo "$TFLITE_SPEC" > "$CACHE/x86-venv-tflite/.ok"
    fi
    X86=$WORK/x86_64-$rt
    mkdir -p "$X86"
    "$xpy" -m edge_runtime.cli --model "$MODEL" "$WORK/inputs" -o "$X86/images" --threads "$THREADS" -q \
        --json "$X86/manifest.json" 2> "$X86/stderr.log" || { cat "$X86/stderr.log"; die "edge-restore failed on x86 ($rt)"; }
    probe=$("$xpy" scripts/arm64_compare.py probe --model "$MODEL" --inputs "$WORK/inputs" --out "$X86/raw.npz" \
        --threads "$THREADS") || die "probe failed on x86 ($rt)"
    say "x86_64 reference '$rt': ${probe#probe: } ($(elapsed "$t"))"
done

status=0
for rt in $RUNTIMES; do
    venv=/opt/venv-$rt
    out=$WORK_IN/aarch64-$rt
    mkdir -p "$ROOTFS$out"
    echo
    say "== aarch64, runtime '$rt' ($venv) =="
    in_root "$venv/bin/python" "$WORK_IN/board_env.py" | sed 's/^/    /' \
        || { status=1; say "FAIL: torch/TensorFlow must not be in the board venv"; }
    t=$(date +%s)
    if in_root "$venv/bin/edge-restore" --model "$MODEL_IN" "$WORK_IN/inputs" -o "$out/images" --threads "$THREADS" \
        --json "$out/manifest.json" --benchmark > "$ROOTFS$out/stdout.log" 2> "$ROOTFS$out/stderr.log"; then
        say "edge-restore --model $(basename "$MODEL") $WORK_IN/inputs -> $(ls "$ROOTFS$out/images" | tr '\n' ' ')($(elapsed "$t"), emulated)"
        sed 's/^/    /' "$ROOTFS$out/stderr.log"
    else
        rc=$?
        cat "$ROOTFS$out/stdout.log" "$ROOTFS$out/stderr.log"
        say "FAIL: edge-restore exited $rc under emulation"; status=1; continue
    fi
    in_root "$venv/bin/python" "$WORK_IN/arm64_compare.py" probe --model "$MODEL_IN" --inputs "$WORK_IN/inputs" \
        --out "$out/raw.npz" --threads "$THREADS" | sed 's/^/    /' || { say "FAIL: probe failed"; status=1; continue; }
    # The Edge TPU path on the board image, up to the delegate load: no device here, so a clear error.
    in_root "$venv/bin/edge-restore" --model "$MODEL_IN" --device edgetpu "$WORK_IN/inputs/sample_noisy.png" \
        -o "$out/edgetpu.png" > "$ROOTFS$out/edgetpu.log" 2>&1 && etpu=0 || etpu=$?
    say "--device edgetpu without a Coral: exit $etpu: $(head -1 "$ROOTFS$out/edgetpu.log")"
    [ "$etpu" = 78 ] || { say "FAIL: expected exit 78 (no Edge TPU)"; status=1; }
    gate=--gate
    case " $GATE " in *" $rt "*) ;; *) gate=--no-gate ;; esac
    echo "ARM-vs-x86 agreement, runtime '$rt' (aarch64 vs x86_64, same interpreter):"
    "$PYTHON" scripts/arm64_compare.py compare --model "$MODEL" --reference "$WORK/x86_64-$rt" --candidate "$ROOTFS$out" \
        "$gate" | sed 's/^/    /' || status=1
done
echo
if [ "$status" = 0 ]; then
    say "arm64-check: PASS (runtimes: $RUNTIMES; agreement required of: $GATE; total $(elapsed "$START"))"
else
    say "arm64-check: FAIL (total $(elapsed "$START"))"
fi
exit "$status"
