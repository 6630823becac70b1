"""
dev/torch_blas.py -- which BLAS PyTorch calls in this process and, for OpenBLAS, what it says of
itself (version and build, the core type whose kernels it runs, threads).

  python3 dev/torch_blas.py                       key/value lines, for dev/deps.sh:
                                                  torch VERSION | numpy VERSION (- when missing)
                                                  blas KIND FILE (KIND: OpenBLAS, MKL, reference, other)
                                                  openblas CONFIG | core CORE | N threads (THREADING)
  python3 dev/torch_blas.py --run SCRIPT ARGS...  prints the BLAS in two lines, refuses anything but
                                                  OpenBLAS (exit 1), then runs SCRIPT with ARGS in this
                                                  same process (dev/bench_cpu.sh: the report is about
                                                  the very process that is timed)

How: the BLAS is the library that gives libtorch_cpu its sgemm_ -- dlsym on libtorch_cpu's own
handle searches as the dynamic linker does for it, and dladdr names the file. Not the list of
loaded libraries: on Debian one process may map both the reference libblas.so.3 and OpenBLAS (the
liblapack.so.3 of OpenBLAS pulls in libopenblas.so.0) while only the first one's sgemm_ is called.
Which libblas.so.3 that is, Debian's update-alternatives decides (libblas.so.3-<arch>-linux-gnu).
"""
import ctypes, os, runpy, sys


class DlInfo(ctypes.Structure):   # glibc's Dl_info
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def version(name):
    try:
        return __import__(name).__version__
    except Exception:
        return "-"


def torch_blas():
    """(kind, file, openblas handle or None) for the BLAS that torch (already imported) calls."""
    maps = [f[5].strip() for f in (line.split(None, 5) for line in open("/proc/self/maps")) if len(f) == 6]
    torch_cpu = [m for m in maps if os.path.basename(m).startswith("libtorch_cpu")]
    if not torch_cpu:
        return "other", "(no libtorch_cpu in this process)", None
    try:
        sgemm = ctypes.CDLL(torch_cpu[0]).sgemm_
    except AttributeError:
        return "other", "(no sgemm_ visible to %s)" % torch_cpu[0], None
    info = DlInfo()
    if not ctypes.CDLL(None).dladdr(ctypes.cast(sgemm, ctypes.c_void_p), ctypes.byref(info)):
        return "other", "(dladdr failed)", None
    path = os.path.realpath(info.dli_fname.decode())
    lib = ctypes.CDLL(path)
    if hasattr(lib, "openblas_get_corename"):
        return "OpenBLAS", path, lib
    if "mkl" in os.path.basename(path).lower() or "libtorch_cpu" in os.path.basename(path):
        return "MKL", path, None   # pip's torch links MKL into libtorch_cpu
    if "/blas/libblas" in path:
        return "reference", path, None
    return "other", path, None


def openblas_says(lib):
    lib.openblas_get_config.restype = lib.openblas_get_corename.restype = ctypes.c_char_p
    threading = {0: "sequential", 1: "pthreads", 2: "OpenMP"}.get(lib.openblas_get_parallel(), "?")
    return "%s | core type in use: %s | %d threads (%s)" % (
        lib.openblas_get_config().decode(), lib.openblas_get_corename().decode(),
        lib.openblas_get_num_threads(), threading)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--run":
        import torch
        kind, path, lib = torch_blas()
        if lib is None:
            sys.exit("error: PyTorch %s calls %s BLAS (%s), not OpenBLAS: dev/deps.sh bench says how to fix it"
                     % (torch.__version__, kind, path))
        print("PyTorch %s BLAS: %s" % (torch.__version__, openblas_says(lib)))
        print("  sgemm_ from %s" % path)
        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
        return
    if len(sys.argv) > 1:
        sys.exit(__doc__)
    print("numpy", version("numpy"))
    print("torch", version("torch"))
    if "torch" in sys.modules:
        kind, path, lib = torch_blas()
        print("blas", kind, path)
        if lib is not None:
            print("openblas", openblas_says(lib))


if __name__ == "__main__":
    main()
