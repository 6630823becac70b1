#!/bin/sh
# dev/deps.sh -- checks that this machine has what the project's commands need and, run as root on
# Debian (12), installs what is missing with apt-get. The one list of dependencies: the Makefile,
# data/prepare.sh, dev/bench_cpu.sh and .ci/run all call it.
#
#   dev/deps.sh build     compiling the CPU programs: the C compiler ($CC, default cc) with libc's
#                         headers, make
#   dev/deps.sh data      preparing the default dataset and GPT-2's vocabulary: node, npm, CA
#                         certificates (npm fetches over HTTPS), tar + gzip
#   dev/deps.sh train     `make train_gpt && ./train_gpt` on a fresh machine, every README example
#                         included: build + data + jansson + mpi (`make train_gpt` runs it first)
#   dev/deps.sh test      `make test`: train + g++ (the CUDA emulator), perl (dev/cuda/emu_build.sh),
#                         python3 (dev/test_bad_input.sh), $PYTHON (default /usr/bin/python3) with
#                         torch and numpy, and a BLAS for PyTorch that is not Debian's reference BLAS,
#                         and matplotlib for $PYTHON (dev/plot_log.py)
#   dev/deps.sh bench     dev/bench_cpu.sh: build + torch and numpy, PyTorch on OpenBLAS
#   dev/deps.sh asan      the AddressSanitizer + UBSan build of .ci/run: build + libasan8, libubsan1
#   dev/deps.sh jansson   Jansson (libjansson-dev): safetensors, data/safetensors.h; `test` and
#                         `train` include it
#   dev/deps.sh mpi       data-parallel training (mpirun -np N ./train_gpt): build + Open MPI
#                         (openmpi-bin, libopenmpi-dev); `test` and `train` include it
#   dev/deps.sh cuda      nvcc: Debian's nvidia-cuda-toolkit (from the contrib and non-free components)
#   dev/deps.sh sources   turns on contrib and non-free for Debian's entries in APT's sources, no
#                         more (`cuda` does it before installing the toolkit); $APT_ETC, default /etc/apt
#   -q                    say nothing when everything is there
# Several modes in one call share one apt-get run: dev/deps.sh test asan cuda.
#
# Contract: it checks for commands, libraries and Python modules, not for package names, so what
# came from elsewhere (a node that is not Debian's, nvcc from NVIDIA) is used as it is; only what is
# missing gets installed, and nothing is replaced. Exit 0: everything is there (one line
# "deps (MODES): ok, ..." unless -q). Otherwise, as root: apt-get update, apt-get install
# --no-install-recommends of the missing packages (DEBIAN_FRONTEND=noninteractive), then the same
# checks again, exit 1 if something is still missing; as another user (or without apt-get): what is
# missing and the one command that installs it, exit 1.
# Why OpenBLAS: with --no-install-recommends Debian's python3-torch gets the reference BLAS
# (libblas3), on which a GPT-2 d12 training step takes 42 s instead of 4.4 s (one core).
# Environment: CC, CXX, PYTHON as the Makefile uses them (cc, g++, /usr/bin/python3).
set -eu
cd "$(dirname "$0")/.."

CC=${CC:-cc}
CXX=${CXX:-g++}
PYTHON=${PYTHON:-/usr/bin/python3}
APT_ETC=${APT_ETC:-/etc/apt}
BLAS_ALT=libblas.so.3-$(uname -m)-linux-gnu   # the update-alternatives link that picks Debian's BLAS

usage() {
    echo "usage: dev/deps.sh [-q] build|data|train|test|bench|asan|cuda|mpi|jansson|sources ..." >&2
    exit 2
}
die() { echo "error: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

quiet=
modes=
for arg in "$@"; do
    case $arg in
        -q) quiet=1 ;;
        build|data|train|test|bench|asan|cuda|mpi|jansson|sources) modes="$modes${modes:+ }$arg" ;;
        *) usage ;;
    esac
done
[ -n "$modes" ] || usage

# ------------------------------------------------------------------------------------------------
# The checks. Each check_X records, through miss, what is missing (for people: $missing) and the
# Debian packages that provide it ($pkgs); through unfixable, problems apt-get cannot fix, each with
# its fix ($fatal); through report, versions for the "ok" line ($found).

miss() {   # miss WHAT PACKAGE...
    missing="$missing${missing:+, }$1"
    shift
    for p in "$@"; do
        case " $pkgs " in *" $p "*) ;; *) pkgs="$pkgs${pkgs:+ }$p" ;; esac
    done
}
unfixable() { fatal="$fatal
  $*"; }
report() { [ -n "$quiet" ] || found="$found, $*"; }

check_build() {
    if ! have "$CC"; then
        case $CC in
            cc|gcc|gcc-12) miss "a C compiler ($CC)" gcc libc6-dev ;;
            *) unfixable "the C compiler CC=$CC is not found (unset CC to use Debian's gcc)" ;;
        esac
    elif ! printf '#include <stdio.h>\n#include <math.h>\nint main(void) { return 0; }\n' |
            "$CC" -x c - -o /dev/null -lm 2>/dev/null; then
        miss "libc's headers for $CC" libc6-dev
    else
        report "$CC $("$CC" -dumpversion 2>/dev/null)"
    fi
    have make || miss make make
}

check_data() {
    if have node; then report "node $(node --version 2>/dev/null)"; else miss node nodejs; fi
    if have npm; then report "npm $(npm --version 2>/dev/null)"; else miss npm npm; fi
    [ -s /etc/ssl/certs/ca-certificates.crt ] || miss "CA certificates (npm's HTTPS)" ca-certificates
    have tar || miss tar tar
    have gzip || miss gzip gzip
}

check_cxx() {
    if have "$CXX"; then report "$CXX $("$CXX" -dumpversion 2>/dev/null)"; return 0; fi
    case $CXX in
        c++|g++|g++-12) miss "a C++ compiler ($CXX, for the CUDA emulator)" g++ ;;
        *) unfixable "the C++ compiler CXX=$CXX is not found (unset CXX to use Debian's g++)" ;;
    esac
}

check_tools() {
    have perl || miss "perl (dev/cuda/emu_build.sh)" perl
    have python3 || miss "python3 on PATH (dev/test_bad_input.sh)" python3
}

# One Python run per check (dev/torch_blas.py): the versions of torch and numpy, and the BLAS
# library whose sgemm_ PyTorch calls.
probe_python() {
    [ -z "${probed:-}" ] || return 0
    probed=1
    torch_v=-; numpy_v=-; blas_kind=none; blas_lib=
    [ -x "$PYTHON" ] || return 0
    out=$("$PYTHON" dev/torch_blas.py 2>/dev/null) || true
    torch_v=$(echo "$out" | sed -n 's/^torch //p')
    numpy_v=$(echo "$out" | sed -n 's/^numpy //p')
    blas_kind=$(echo "$out" | sed -n 's/^blas \([^ ]*\).*/\1/p')
    blas_lib=$(echo "$out" | sed -n 's/^blas [^ ]* *//p')
    : "${torch_v:=-}" "${numpy_v:=-}" "${blas_kind:=none}"
}

openblas_installed() {
    dpkg-query -W -f '${db:Status-Abbrev}\n' libopenblas0-openmp libopenblas0-pthread 2>/dev/null |
        grep -q '^ii'
}

check_torch() {
    probe_python
    if [ "$PYTHON" != /usr/bin/python3 ]; then
        if [ ! -x "$PYTHON" ] || [ "$torch_v" = - ] || [ "$numpy_v" = - ]; then
            unfixable "PYTHON=$PYTHON lacks torch or numpy (torch $torch_v, numpy $numpy_v): install them there, or use Debian's: PYTHON=/usr/bin/python3"
        fi
    else
        [ -x "$PYTHON" ] || miss /usr/bin/python3 python3
        [ "$torch_v" != - ] || miss "PyTorch for /usr/bin/python3" python3-torch
        [ "$numpy_v" != - ] || miss "numpy for /usr/bin/python3" python3-numpy
    fi
    case $blas_kind in
        OpenBLAS|MKL) report "torch $torch_v + numpy $numpy_v on $blas_kind" ;;
        none) ;;
        *) report "torch $torch_v + numpy $numpy_v on $blas_kind BLAS $blas_lib" ;;
    esac
}

# test: any BLAS but Debian's reference one. bench: OpenBLAS.
check_blas() {
    probe_python
    if [ "$torch_v" = - ]; then
        # PyTorch is about to be installed: with OpenBLAS beside it
        openblas_installed || miss "OpenBLAS for PyTorch" libopenblas0-openmp
        return 0
    fi
    case $blas_kind in
        reference)
            if openblas_installed; then
                unfixable "PyTorch calls Debian's reference BLAS ($blas_lib) although OpenBLAS is installed: libblas.so.3 was pointed at it by hand (or LD_LIBRARY_PATH); back to the best one, as root: update-alternatives --auto $BLAS_ALT"
            else
                miss "OpenBLAS for PyTorch (it has Debian's reference BLAS: 10x slower)" libopenblas0-openmp
            fi ;;
    esac
}

check_openblas() {
    check_blas
    [ "$torch_v" != - ] || return 0
    case $blas_kind in
        OpenBLAS|reference|none) ;;
        *) unfixable "PyTorch ($PYTHON, torch $torch_v) runs on $blas_kind BLAS ($blas_lib), not OpenBLAS: the benchmark compares against PyTorch on OpenBLAS (Debian's python3-torch: PYTHON=/usr/bin/python3)" ;;
    esac
}

check_asan() {
    have "$CC" || return 0   # check_build says so
    printf 'int main(void) { return 0; }\n' |
        "$CC" -fsanitize=address,undefined -x c - -o /dev/null 2>/dev/null ||
        miss "the AddressSanitizer and UBSan runtimes" libasan8 libubsan1
}

# matplotlib: dev/plot_log.py's pictures of log.txt
check_plot() {
    if [ -x "$PYTHON" ] && "$PYTHON" -c "import matplotlib" 2>/dev/null; then return 0; fi
    if [ "$PYTHON" = /usr/bin/python3 ]; then miss "matplotlib for /usr/bin/python3" python3-matplotlib
    else unfixable "PYTHON=$PYTHON lacks matplotlib: install it there, or use Debian's: PYTHON=/usr/bin/python3"; fi
}

# Jansson: the JSON of safetensors headers (data/safetensors.h; the trainers build without it)
check_jansson() {
    printf '#include <jansson.h>\nint main(void) { json_decref(json_object()); return 0; }\n' |
        "$CC" -x c - -o /dev/null -ljansson 2>/dev/null || miss "Jansson (libjansson-dev, for safetensors)" libjansson-dev
}

# MPI (Open MPI from Debian): mpicc compiles the data-parallel trainer, mpirun runs the tests' ranks
check_mpi() {
    if have mpicc && printf '#include <mpi.h>\nint main(int c, char** v) { MPI_Init(&c, &v); MPI_Finalize(); return 0; }\n' |
            mpicc -x c - -o /dev/null 2>/dev/null; then
        report "$(mpirun --version 2>/dev/null | head -1)"
    else
        miss "MPI (mpicc with mpi.h)" libopenmpi-dev
    fi
    have mpirun || miss mpirun openmpi-bin
}

nvcc_path() { command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null; }
check_cuda() {
    if nvcc_path >/dev/null; then report "nvcc $(nvcc_path)"; else miss "nvcc (the CUDA toolkit)" nvidia-cuda-toolkit; fi
}

checks=
want() { for c in "$@"; do case " $checks " in *" $c "*) ;; *) checks="$checks $c" ;; esac; done; }
for m in $modes; do
    case $m in
        build) want build ;;
        data) want data ;;
        train) want build data jansson mpi ;;
        test) want build data cxx tools torch blas mpi jansson plot ;;
        mpi) want build mpi ;;
        jansson) want build jansson ;;
        bench) want build torch openblas ;;
        asan) want build asan ;;
        cuda) want cuda ;;
        sources) ;;
    esac
done

check() {
    missing=; pkgs=; fatal=; found=; probed=
    for c in $checks; do "check_$c"; done
}

# ------------------------------------------------------------------------------------------------
# contrib and non-free for nvidia-cuda-toolkit. APT's sources come in two formats, and a machine may
# use either or both: one-line entries in sources.list and sources.list.d/*.list
# ("deb [options] URI SUITE COMPONENT..."), and deb822 stanzas in sources.list.d/*.sources
# ("Components: main" in a stanza with "URIs: ..."). A Debian entry is one whose URI contains
# "debian" and whose components include main: it gets contrib and non-free added. Loud failure
# when there is no such entry or a file cannot be written.

# shellcheck disable=SC2016 # awk programs: the $ are awk's
ONELINE_AWK='
function has(w, n, c,   i) { for (i = 3; i <= n; i++) if (w[i] == c) return 1; return 0 }
/^[ \t]*deb(-src)?[ \t]/ {
    body = $0; comment = ""
    if ((i = index(body, "#")) > 0) { comment = " " substr(body, i); body = substr(body, 1, i - 1) }
    sub(/[ \t]+$/, "", body)
    rest = body
    sub(/^[ \t]*deb(-src)?[ \t]+/, "", rest)
    if (rest ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", rest)
    n = split(rest, w, /[ \t]+/)              # w[1] URI, w[2] suite, w[3..n] components
    if (n >= 3 && w[1] ~ /debian/ && has(w, n, "main")) {
        debian++
        add = ""
        if (!has(w, n, "contrib")) add = add " contrib"
        if (!has(w, n, "non-free")) add = add " non-free"
        if (add != "") { print FILENAME ": \"" body "\" +" add > "/dev/stderr"; print body add comment; next }
    }
}
{ print }
END { print debian + 0 > countfile }'

# shellcheck disable=SC2016
DEB822_AWK='
function flush(   i, l, uris, cl, enabled, v, n, w, has_main, has_contrib, has_nonfree, add) {
    uris = ""; cl = 0; enabled = 1
    for (i = 1; i <= nb; i++) {
        l = tolower(buf[i])
        if (l ~ /^uris:/) uris = l
        else if (l ~ /^components:/) cl = i
        else if (l ~ /^enabled:[ \t]*no/) enabled = 0
    }
    if (cl && enabled && uris ~ /debian/) {
        v = buf[cl]; sub(/^[^:]*:/, "", v); gsub(/^[ \t]+|[ \t]+$/, "", v)
        n = split(v, w, /[ \t]+/)
        has_main = has_contrib = has_nonfree = 0
        for (i = 1; i <= n; i++) {
            if (w[i] == "main") has_main = 1
            if (w[i] == "contrib") has_contrib = 1
            if (w[i] == "non-free") has_nonfree = 1
        }
        if (has_main) {
            debian++
            add = ""
            if (!has_contrib) add = add " contrib"
            if (!has_nonfree) add = add " non-free"
            if (add != "") {
                sub(/[ \t]+$/, "", buf[cl])
                print FILENAME ": \"" buf[cl] "\" +" add > "/dev/stderr"
                buf[cl] = buf[cl] add
            }
        }
    }
    for (i = 1; i <= nb; i++) print buf[i]
    nb = 0
}
/^[ \t]*$/ { flush(); print; next }
{ buf[++nb] = $0 }
END { flush(); print debian + 0 > countfile }'

enable_contrib_nonfree() {
    tmp=$(mktemp -d /tmp/deps_sources_XXXXXX)
    entries=0
    for f in "$APT_ETC/sources.list" "$APT_ETC"/sources.list.d/*.list "$APT_ETC"/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        case $f in *.sources) prog=$DEB822_AWK ;; *) prog=$ONELINE_AWK ;; esac
        awk -v countfile="$tmp/count" "$prog" "$f" > "$tmp/new" || { rm -rf "$tmp"; die "$f: cannot parse"; }
        entries=$((entries + $(cat "$tmp/count")))
        if ! cmp -s "$f" "$tmp/new"; then
            cat "$tmp/new" > "$f" 2>/dev/null || { rm -rf "$tmp"; die "$f: cannot write it (run as root)"; }
        fi
    done
    rm -rf "$tmp"
    [ "$entries" -gt 0 ] || die "found no Debian entry with the component main in $APT_ETC/sources.list or $APT_ETC/sources.list.d/*.list, *.sources, so contrib and non-free (nvidia-cuda-toolkit) cannot be turned on: add them to your Debian mirror's entry by hand ('deb http://deb.debian.org/debian bookworm main contrib non-free' in sources.list, or 'Components: main contrib non-free' in a .sources file), or install NVIDIA's CUDA toolkit and put nvcc on PATH"
    echo "contrib and non-free are on in $entries Debian entr$([ "$entries" -eq 1 ] && echo y || echo ies) of $APT_ETC"
}

case " $modes " in *" sources "*) enable_contrib_nonfree ;; esac
[ "$modes" != sources ] || exit 0

# ------------------------------------------------------------------------------------------------
check
if [ -z "$missing" ] && [ -z "$fatal" ]; then
    [ -n "$quiet" ] || echo "deps ($modes): ok$found"
    exit 0
fi
[ -z "$fatal" ] || { echo "dev/deps.sh $modes: cannot fix this by installing packages:$fatal" >&2; [ -n "$missing" ] || exit 1; }

case " $pkgs " in *" nvidia-cuda-toolkit "*) cuda=1 ;; *) cuda= ;; esac
if [ "$(id -u)" -ne 0 ] || ! have apt-get; then
    echo "dev/deps.sh $modes: missing: $missing" >&2
    if have apt-get; then
        echo "  to install, as root: ${cuda:+dev/deps.sh sources && }apt-get update && apt-get install -y --no-install-recommends $pkgs" >&2
        echo "  (or run this check as root, which does it: sudo dev/deps.sh $modes)" >&2
    else
        echo "  no apt-get here: install them with this system's package manager (Debian's names: $pkgs)" >&2
    fi
    exit 1
fi

echo "dev/deps.sh $modes: missing: $missing; installing: $pkgs"
export DEBIAN_FRONTEND=noninteractive
[ -z "$cuda" ] || enable_contrib_nonfree
apt-get update -qq || die "apt-get update failed (above)"
if [ -n "$cuda" ]; then
    candidate=$(apt-cache policy nvidia-cuda-toolkit 2>/dev/null | sed -n 's/^ *Candidate: //p')
    case $candidate in
        ''|'(none)') die "nvidia-cuda-toolkit has no installation candidate even with contrib and non-free on (see $APT_ETC/sources.list*): is this Debian 12 with a mirror that carries non-free? Else install NVIDIA's CUDA toolkit and put nvcc on PATH" ;;
    esac
fi
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends $pkgs >/dev/null || die "apt-get install $pkgs failed (above)"

check
if [ -n "$missing" ] || [ -n "$fatal" ]; then
    die "still missing after apt-get install: ${missing:-}${fatal}"
fi
echo "deps ($modes): ok$found"
