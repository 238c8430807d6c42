"""Does the installed llama.cpp really run on this CPU? Two checks, neither in-process.

1. **The build** (``check_build``): the installed ``libggml-cpu*.so`` is disassembled with
   ``objdump -d`` and must hold no AMX tile instruction (``ldtilecfg``, ``tileloadd``,
   ``tdpb*``…) and no AVX-512 register (``zmm``). A library built with ``GGML_NATIVE=ON`` on
   a machine that advertises them holds thousands; on x86-64 VMs that advertise AMX a
   process cannot really use, it dies with SIGILL or SIGSEGV in ``decode`` as soon as a
   prompt has a few tokens (issue 12). ``scripts/install-llama-cpp.sh`` builds portably and
   runs this check; so does the test suite.
2. **The canary** (``probe``): before the app chooses the llama.cpp engine it runs a tiny
   load-and-decode — a prompt of a few dozen tokens, then a few greedy tokens — in a child
   process. A child that dies by a signal, fails or hangs (bounded by ``timeout``) means
   the engine would take the whole app down: ``--engine auto`` falls back to transformers
   and says why, an explicit ``--engine llama.cpp`` exits with the reason. The verdict is
   cached per library build and CPU (a file in the cache directory), so later starts do
   not pay for it twice.

Run it as ``python -c "$MAIN" check-build`` (exit 1 when the build holds such
instructions) or ``… canary MODEL.gguf [--threads N]`` (the child's side), with ``MAIN``
below: ``-m`` would import this module twice (``backends.local`` imports it too).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

MAIN = "import sys; from backends.local.engine.probe import main; sys.exit(main(sys.argv[1:]))"
REPO_ROOT = Path(__file__).resolve().parents[3]  # the child runs `-m backends.local…` here

REBUILD_HINT = (
    "rebuild it portably with `rm -rf .venv/.fast-installed && make setup-fast` "
    "(scripts/install-llama-cpp.sh: GGML_NATIVE=OFF, AVX2)"
)
CANARY_PROMPT = "The capital of France is a city that " * 6  # ~50 tokens: batched matmuls
CANARY_TOKENS = 4
CANARY_TIMEOUT_S = 90.0  # load (~1 s) + decode (< 1 s) on 2 cores; generous for slow disks

# AMX: tile config/load/store, and the tile dot products (tdpbssd, tdpbf16ps, tdpfp16ps …).
_AMX = re.compile(r"\b(ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilezero|tilerelease|tdp\w+)\b")
_ZMM = re.compile(r"%zmm\d+|\bzmm\d+\b")


# -- 1. the build ----------------------------------------------------------------------------


def library_dir() -> Path | None:
    """llama-cpp-python's ``lib/`` folder, found without importing (loading) it."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def cpu_libraries(lib_dir: Path) -> list[Path]:
    """The ggml CPU backend libraries: ``libggml-cpu.so``, or one per variant where llama.cpp
    was built for runtime dispatch (``libggml-cpu-haswell.so`` …)."""
    # Only the names the loader opens: a wheel stores libggml-cpu.so.0(.25.3) as copies.
    return sorted(lib_dir.glob("libggml-cpu*.so"))


@dataclasses.dataclass(frozen=True)
class InstructionCount:
    library: str
    amx: int
    zmm: int

    @property
    def portable(self) -> bool:
        return self.amx == 0 and self.zmm == 0


def count_instructions(library: Path) -> InstructionCount:
    """AMX instructions and AVX-512 (``zmm``) operands in ``library``'s disassembly."""
    objdump = shutil.which("objdump")
    if objdump is None:
        raise RuntimeError("objdump is not installed (Debian: apt-get install binutils)")
    text = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", str(library)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return InstructionCount(library.name, len(_AMX.findall(text)), len(_ZMM.findall(text)))


def check_build(lib_dir: Path | None = None) -> list[InstructionCount]:
    """Counts for every CPU library of the installed llama-cpp-python (raises
    ``FileNotFoundError`` when none is installed)."""
    lib_dir = lib_dir or library_dir()
    libraries = cpu_libraries(lib_dir) if lib_dir and lib_dir.is_dir() else []
    if not libraries:
        raise FileNotFoundError(f"no libggml-cpu*.so under {lib_dir} (llama-cpp-python missing?)")
    return [count_instructions(library) for library in libraries]


# -- 2. the canary ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The canary's answer: ``ok``, or ``reason`` (one line a person can act on)."""

    ok: bool
    reason: str = ""
    cached: bool = False
    seconds: float = 0.0


def run_canary(
    command: list[str],
    *,
    timeout: float = CANARY_TIMEOUT_S,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Verdict:
    """Run ``command`` (the child's side of the canary) and judge how it ended: exit 0 is
    ``ok``; death by a signal, another exit status or running past ``timeout`` is not."""
    started = time.monotonic()
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd or REPO_ROOT,
            start_new_session=True,  # its own process group: a hung one is killed whole
        )
    except OSError as exc:
        return Verdict(False, f"the llama.cpp check could not start: {exc}")
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        return Verdict(False, f"llama.cpp hung on a tiny prompt (no answer in {timeout:.0f} s)")
    seconds = time.monotonic() - started
    if child.returncode == 0:
        return Verdict(True, seconds=seconds)
    if child.returncode < 0:
        name = _signal_name(-child.returncode)
        return Verdict(False, f"llama.cpp crashed on this CPU ({name})", seconds=seconds)
    last = (stderr or stdout).strip().splitlines()
    detail = last[-1][:300] if last else f"exit status {child.returncode}"
    return Verdict(False, f"llama.cpp failed a tiny load-and-decode: {detail}", seconds=seconds)


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    meaning = {"SIGILL": "illegal instruction", "SIGSEGV": "segmentation fault"}.get(name)
    return f"{name}, {meaning}" if meaning else name


def canary_command(model_path: str, threads: int) -> list[str]:
    return [
        sys.executable,
        "-X",
        "faulthandler",  # a native crash leaves its Python stack in the child's stderr
        "-c",
        MAIN,
        "canary",
        model_path,
        "--threads",
        str(threads),
    ]


def build_key(lib_dir: Path | None = None) -> str:
    """What identifies this llama.cpp build on this CPU: the package version, the size and
    modification time of every library file, and the CPU's model name and flags."""
    lib_dir = lib_dir or library_dir()
    parts = [_version()]
    if lib_dir and lib_dir.is_dir():
        for path in sorted(lib_dir.glob("*.so*")):
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    parts.append(_cpu_identity())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _version() -> str:
    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cpu_identity() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return f"{fields.get('model name', '')}|{fields.get('flags', fields.get('Features', ''))}"


def probe(
    model_path: str,
    *,
    threads: int,
    cache_dir: Path | None = None,
    timeout: float = CANARY_TIMEOUT_S,
    command: list[str] | None = None,
    key: str | None = None,
) -> Verdict:
    """The canary's verdict for llama.cpp on ``model_path`` here, from the cache when this
    build was judged before on this CPU. Only a clean run or a crash by a signal is cached
    (they depend on the build and the CPU); a failure or a hang is tried again next time.

    ``command`` replaces the child (tests: one that kills itself, one that hangs).
    """
    cache_file = None
    if cache_dir is not None:
        key = key or build_key()
        cache_file = Path(cache_dir) / "llama-cpp-canary" / f"{key}.json"
        try:
            saved = json.loads(cache_file.read_text())
            return Verdict(bool(saved["ok"]), str(saved.get("reason", "")), cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    verdict = run_canary(command or canary_command(model_path, threads), timeout=timeout)
    log.info(
        "llama.cpp canary: %s (%.1f s)", "ok" if verdict.ok else verdict.reason, verdict.seconds
    )
    if cache_file is not None and (verdict.ok or "crashed" in verdict.reason):
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"ok": verdict.ok, "reason": verdict.reason}))
            tmp.replace(cache_file)
        except OSError as exc:  # a read-only cache only costs the next start a canary
            log.warning("could not cache the llama.cpp canary's verdict: %s", exc)
    return verdict


def _canary_child(model_path: str, threads: int) -> None:
    """Load ``model_path`` and decode a few greedy tokens after a multi-token prompt."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path,
        n_ctx=256,
        n_batch=256,
        n_threads=threads,
        n_threads_batch=threads,
        n_gpu_layers=0,
        verbose=False,
    )
    out = llm(CANARY_PROMPT, max_tokens=CANARY_TOKENS, temperature=0.0)
    print(json.dumps({"text": out["choices"][0]["text"]}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llamacpp_probe")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-build", help="objdump the installed libggml-cpu*.so")
    canary = commands.add_parser("canary", help="tiny load-and-decode (the child's side)")
    canary.add_argument("model")
    canary.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "canary":
        _canary_child(args.model, args.threads)
        return 0
    try:
        counts = check_build()
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"check-build: {exc}", file=sys.stderr)
        return 2
    for count in counts:
        state = "portable" if count.portable else "NOT PORTABLE"
        print(f"{count.library}: {count.amx} AMX, {count.zmm} zmm (AVX-512) instructions: {state}")
    if all(count.portable for count in counts):
        return 0
    print(f"llama.cpp was built for another CPU's instruction set: {REBUILD_HINT}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
