"""Issue 12: llama.cpp proves it runs on this CPU before it is chosen, and the installed
build holds no instruction a VM may advertise but not run (AMX, AVX-512).

The canary's verdict is tested on real child processes: one that kills itself with SIGILL,
one that dies by SIGSEGV inside a stand-in llama_cpp package (the canary's own child code
runs, only the library is fake), one that hangs (bounded by the timeout, its process group
killed), one that fails, and the real library on the bundled GGUF.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from backends.errors import UnavailableError
from backends.local.engine import select as engines
from backends.local.engine.llamacpp import default_threads, llamacpp_available
from backends.local.engine.probe import (
    Verdict,
    build_key,
    canary_command,
    check_build,
    count_instructions,
    library_dir,
    probe,
    run_canary,
)
from backends.local.engine.select import choose_engine
from backends.local.model import ModelSource, bundled_gguf

REPO_ROOT = Path(__file__).resolve().parents[2]
CRASHING_LIBRARY = REPO_ROOT / "tests" / "fixtures" / "crashing_llama_cpp"
GGUF = ModelSource(kind="gguf", model_id="x.gguf", location="/models/x.gguf")


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# -- run_canary: how the child ended -----------------------------------------------------


def test_a_child_killed_by_sigill_is_a_crash() -> None:
    verdict = run_canary(python("import os, signal; os.kill(os.getpid(), signal.SIGILL)"))
    assert not verdict.ok
    assert verdict.reason == "llama.cpp crashed on this CPU (SIGILL, illegal instruction)"


def test_the_canary_child_on_a_library_that_segfaults_is_a_crash() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(CRASHING_LIBRARY), str(REPO_ROOT)]))
    verdict = run_canary(canary_command("/no/model.gguf", 1), env=env, cwd=REPO_ROOT)
    assert not verdict.ok
    assert verdict.reason == "llama.cpp crashed on this CPU (SIGSEGV, segmentation fault)"


def test_a_hung_child_is_bounded_and_its_process_group_killed(tmp_path: Path) -> None:
    # The child starts a grandchild (as a library's worker could) and both hang.
    pid_file = tmp_path / "grandchild.pid"
    command = python(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(600)
        """
    )
    verdict = run_canary(command, timeout=3)
    assert not verdict.ok
    assert verdict.reason == "llama.cpp hung on a tiny prompt (no answer in 3 s)"
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the hung child's own child survived the canary"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by init) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def test_a_child_that_fails_gives_its_last_error_line() -> None:
    verdict = run_canary(python("import sys; sys.exit('llama_model_load: bad magic')"))
    assert not verdict.ok
    assert verdict.reason == "llama.cpp failed a tiny load-and-decode: llama_model_load: bad magic"


def test_a_child_that_exits_cleanly_is_ok() -> None:
    assert run_canary(python("print('fine')")) == Verdict(True, seconds=pytest.approx(0, abs=60))


# -- probe: the verdict is cached per build ------------------------------------------------


def test_a_crash_is_cached_and_a_failure_is_tried_again(tmp_path: Path) -> None:
    crash = python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    first = probe("m.gguf", threads=1, cache_dir=tmp_path, key="build-a", command=crash)
    assert not first.ok and not first.cached
    # The next start does not run the child again: a command that would pass is not asked.
    again = probe("m.gguf", threads=1, cache_dir=tmp_path, key="build-a", command=python(""))
    assert again == Verdict(False, first.reason, cached=True)
    # Another build (another key) is judged afresh.
    other = probe("m.gguf", threads=1, cache_dir=tmp_path, key="build-b", command=python(""))
    assert other.ok and not other.cached
    # A failure (could be the model file, a full disk) is not cached.
    fail = python("raise SystemExit('no such file')")
    assert not probe("m.gguf", threads=1, cache_dir=tmp_path, key="build-c", command=fail).ok
    assert probe("m.gguf", threads=1, cache_dir=tmp_path, key="build-c", command=python("")).ok


def test_build_key_changes_with_the_library_files(tmp_path: Path) -> None:
    (tmp_path / "libggml-cpu.so").write_bytes(b"one build")
    first = build_key(tmp_path)
    assert build_key(tmp_path) == first
    (tmp_path / "libggml-cpu.so").write_bytes(b"another build, another size")
    assert build_key(tmp_path) != first


# -- choose_engine: fall back under auto, refuse when asked for by name --------------------


@pytest.fixture
def installed(monkeypatch) -> None:
    monkeypatch.setattr(engines, "llamacpp_available", lambda: True)
    monkeypatch.setattr(engines, "_runs_on_cpu", lambda device: True)


CRASHED = Verdict(False, "llama.cpp crashed on this CPU (SIGILL, illegal instruction)")


def test_auto_falls_back_to_transformers_and_says_why(installed) -> None:
    asked: list[str] = []

    def canary(path: str) -> Verdict:
        asked.append(path)
        return CRASHED

    choice = choose_engine("auto", GGUF, "auto", canary=canary)
    assert asked == ["/models/x.gguf"]
    assert choice.name == "transformers"
    assert choice.note.startswith(
        "llama.cpp crashed on this CPU (SIGILL, illegal instruction) — using the transformers "
        "engine; rebuild it portably with `rm -rf .venv/.fast-installed && make setup-fast`"
    )


def test_explicit_llamacpp_that_crashes_is_refused_with_the_reason(installed) -> None:
    with pytest.raises(UnavailableError) as error:
        choose_engine("llama.cpp", GGUF, "cpu", canary=lambda path: CRASHED)
    message = error.value.user_message()
    assert message.startswith("llama.cpp crashed on this CPU (SIGILL, illegal instruction).")
    assert "or use --engine transformers." in message


def test_a_passing_canary_keeps_llamacpp_and_transformers_is_never_probed(installed) -> None:
    assert choose_engine("auto", GGUF, canary=lambda path: Verdict(True)).name == "llama.cpp"
    assert choose_engine("auto", GGUF, canary=lambda path: Verdict(True)).note == ""

    def never(path: str) -> Verdict:
        raise AssertionError("the canary ran for the transformers engine")

    assert choose_engine("transformers", GGUF, canary=never).name == "transformers"


def test_auto_says_why_it_picked_each_engine(installed, monkeypatch) -> None:
    ok = lambda path: Verdict(True)  # noqa: E731
    fast = choose_engine("auto", GGUF, "cpu", canary=ok).reason
    assert fast.startswith("llama.cpp engine (auto): a GGUF model on the CPU — ")
    assert engines.LLAMACPP_MEASURED in fast and "tok/s" in engines.LLAMACPP_MEASURED
    fell_back = choose_engine("auto", GGUF, "cpu", canary=lambda path: CRASHED).reason
    assert fell_back == f"transformers engine (auto): {CRASHED.reason}"
    folder = ModelSource(kind="dir", model_id="m", location="/models/m")
    assert choose_engine("auto", folder, "cpu").reason.endswith("the model is not a GGUF file")
    assert choose_engine("auto", GGUF, "cuda").reason.endswith("generation runs on the GPU")
    assert choose_engine("llama.cpp", GGUF, "cpu", canary=ok).reason == (
        "llama.cpp engine: asked for with --engine llama.cpp"
    )
    monkeypatch.setattr(engines, "llamacpp_available", lambda: False)
    assert "`make setup-fast`" in choose_engine("auto", GGUF, "cpu").reason


# -- the real library ----------------------------------------------------------------------


def _need_llamacpp() -> None:
    if llamacpp_available():
        return
    reason = "llama-cpp-python is not installed (make setup-fast)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true: `make test` installs it, so its checks must run")
    pytest.skip(reason)


def test_the_real_library_passes_the_canary_on_the_bundled_model(tmp_path: Path) -> None:
    _need_llamacpp()
    verdict = probe(str(bundled_gguf()), threads=default_threads(), cache_dir=tmp_path)
    assert verdict == Verdict(True, seconds=verdict.seconds)
    assert probe(str(bundled_gguf()), threads=1, cache_dir=tmp_path).cached


def test_the_installed_build_holds_no_amx_or_avx512_instruction() -> None:
    _need_llamacpp()
    counts = check_build()
    assert [c.library for c in counts] == ["libggml-cpu.so"]  # no runtime-dispatch variants
    assert [(c.amx, c.zmm) for c in counts] == [(0, 0)], f"built for another CPU: {counts}"
    # The wheel was built by scripts/install-llama-cpp.sh, which records its flags.
    assert (library_dir() / "libggml-cpu.so").exists()


def test_the_instruction_counter_finds_amx_and_avx512(tmp_path: Path) -> None:
    """The check above would pass vacuously if the counter missed what it looks for: it
    must count the instructions of a library that does hold them."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    source = tmp_path / "native.c"
    source.write_text(
        textwrap.dedent(
            """
            void amx(const void *config, const void *data) {
                __asm__ volatile("ldtilecfg (%0)" :: "r"(config));
                __asm__ volatile("tileloadd (%0,%1,1), %%tmm0" :: "r"(data), "r"(64L));
                __asm__ volatile("tdpbssd %tmm1, %tmm2, %tmm0");
            }
            void avx512(void) { __asm__ volatile("vpaddd %zmm1, %zmm2, %zmm3"); }
            """
        )
    )
    library = tmp_path / "libggml-cpu.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(library), str(source)],
        check=True,
        capture_output=True,
    )
    count = count_instructions(library)
    assert (count.amx, count.zmm) == (3, 3)
    assert not count.portable
    assert check_build(tmp_path)[0] == count
