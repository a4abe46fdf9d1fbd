"""Which files one `edge-restore` run reads and writes: input expansion (folders, globs, `**`),
output names, and the checks made before any image is processed (collisions, overwrites,
writable folders, name lengths, temp files left by a killed run)."""

from __future__ import annotations

import errno
import fnmatch
import glob
import logging
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import EdgeRestoreError, OutputWriteError, UsageError
from .imageio import FORMATS, INPUT_EXTENSIONS, NAME_MAX, output_format

log = logging.getLogger("edge_runtime")

OUTPUT_SUFFIX = "_restored"
COMPARE_SUFFIX = "_compare"
_GLOB_CHARS = set("*?[")


@dataclass
class Job:
    input: Path
    output: Path | None = None
    compare: Path | None = None
    status: str = "pending"  # ok | error | skipped | interrupted | pending
    error: str = ""
    exit_code: int = 0
    seconds: float = 0.0
    megapixels: float = 0.0
    noise_sigma: float | None = None  # --classic without --noise-sigma: the sigma estimated for this image
    deblur: dict | None = None  # --model with --kernel: the kernel and schedule this image used
    stage: str = ""  # what is being done to the image, for an out-of-memory message (not in the manifest)

    def manifest(self) -> dict:
        entry = {
            "input": str(self.input),
            "output": str(self.output) if self.output else None,
            "compare": str(self.compare) if self.compare else None,
            "status": self.status,
            "error": self.error or None,
            "seconds": round(self.seconds, 4),
        }
        if self.noise_sigma is not None:
            entry["noise_sigma"] = round(self.noise_sigma, 3)
        if self.deblur is not None:
            entry["deblur"] = self.deblur
        return entry


    def fail(self, exc: EdgeRestoreError) -> None:
        """Mark the job failed with the error's message and exit code."""
        self.status, self.error, self.exit_code = "error", str(exc), exc.exit_code


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # symlink loops
        return path.absolute()


def _is_own_output(path: Path) -> bool:
    return path.stem.endswith((OUTPUT_SUFFIX, COMPARE_SUFFIX))


def _special_kind(path: Path) -> str | None:
    """Why an image-named directory entry cannot be read as a file, or None if it is a regular file."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if path.is_symlink():
            return "a symbolic link loop" if exc.errno == errno.ELOOP else "a broken symbolic link"
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _image_files(paths, include_hidden: bool = False) -> list[Path]:
    """Image files among `paths`; FIFOs, devices and bad links are skipped with a warning (never opened)."""
    out = []
    for path in paths:
        if path.suffix.lower() not in INPUT_EXTENSIONS:
            continue
        if not include_hidden and path.name.startswith("."):
            continue
        if _is_own_output(path):
            continue
        kind = _special_kind(path)
        if kind is not None:
            if kind != "a directory":
                log.warning("skipping %s: %s, not an image file", path, kind)
            continue
        out.append(path)
    return sorted(out)


def _match_parts(parts: tuple[str, ...], pats: tuple[str, ...]) -> bool:
    """Whether path components match glob components ('**' = any number of folders)."""
    if not pats:
        return not parts
    if pats[0] == "**":
        return any(_match_parts(parts[i:], pats[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pats[0]) and _match_parts(parts[1:], pats[1:])


def _walk_glob(pattern: str) -> list[Path]:
    """A '**' glob, walked with cycle detection: each folder (device, inode) is entered once.

    glob.glob(recursive=True) follows symbolic links to folders with no such check, so a link
    cycle (a/b/up -> a) made it descend until the path got too long, exponentially with several
    links (issue 18: it hung).
    """
    parts = Path(pattern).parts
    split = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), len(parts))
    root = Path(*parts[:split]) if split else Path(".")
    pats = tuple(parts[split:])
    seen: set[tuple[int, int]] = set()
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        try:
            st = os.stat(folder)
        except OSError:
            dirs[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        rel = Path(folder).relative_to(root).parts
        dirs.sort()
        for name in sorted(files):
            if _match_parts(rel + (name,), pats):
                found.append(Path(folder) / name)
    return found


def expand_inputs(args_inputs: list[str], recursive: bool) -> list[tuple[Path, Path | None]]:
    """(file, root) pairs: root is the directory argument a file came from (for mirroring), else None.

    A missing file or a glob that matches nothing is returned as (path, None) and fails later
    with 'input not found' (exit 66), so a batch continues past it.
    """
    found: list[tuple[Path, Path | None]] = []
    for arg in args_inputs:
        path = Path(arg)
        if path.is_dir():
            files = _image_files(path.rglob("*") if recursive else path.iterdir())
            if not files:
                log.warning("no images found in %s%s", path, "" if recursive else " (use --recursive for sub-folders)")
            found.extend((f, path) for f in files)
        elif path.exists() or not (_GLOB_CHARS & set(arg)):
            found.append((path, None))
        else:
            matches = _walk_glob(arg) if recursive and "**" in arg else [Path(m) for m in sorted(glob.glob(arg))]
            files = _image_files(matches)
            found.extend((f, None) for f in files) if files else found.append((path, None))
    seen: set[Path] = set()
    unique = []
    for path, root in found:
        key = _resolve(path)
        if key not in seen:
            seen.add(key)
            unique.append((path, root))
    return unique


def _default_ext(path: Path) -> str:
    return path.suffix if path.suffix.lower() in FORMATS else ".png"


def is_batch(args_inputs: list[str]) -> bool:
    """Several arguments, a directory or a glob: -o then names a directory."""
    return len(args_inputs) > 1 or any(
        Path(a).is_dir() or (bool(_GLOB_CHARS & set(a)) and not Path(a).exists()) for a in args_inputs
    )


def plan_outputs(
    inputs: list[tuple[Path, Path | None]], output: str | None, compare: bool, batch: bool = False
) -> tuple[list[Job], str | None]:
    """Map inputs to outputs. Returns the jobs and a usage error message (or None)."""
    jobs: list[Job] = []
    out_dir: Path | None = None
    out_file: Path | None = None
    if output is not None:
        out_path = Path(output)
        # os.path's checks: Path.is_dir() raises for a name too long (that is reported, 73, later)
        as_dir = batch or os.path.isdir(out_path) or output.endswith(("/", os.sep)) or len(inputs) > 1
        if as_dir:
            if os.path.exists(out_path) and not os.path.isdir(out_path):
                return [], f"-o {output} is a file, but several inputs need an output directory"
            out_dir = out_path
        else:
            out_file = out_path
            try:
                output_format(out_file)
            except UsageError as exc:
                return [], str(exc)
    for path, root in inputs:
        ext = _default_ext(path)
        name = f"{path.stem}{OUTPUT_SUFFIX}{ext}"
        if out_file is not None:
            dst = out_file
        elif out_dir is not None:
            sub = path.parent.relative_to(root) if root is not None else Path()
            dst = out_dir / sub / name
        else:
            dst = path.with_name(name)
        # With `-o NAME.ext` the comparison image follows it (NAME_compare.ext), else the input's stem.
        stem = out_file.stem if out_file is not None else path.stem
        cmp = dst.with_name(f"{stem}{COMPARE_SUFFIX}{dst.suffix}") if compare else None
        jobs.append(Job(input=path, output=dst, compare=cmp))
    return jobs, None


def check_outputs(jobs: list[Job], overwrite: bool, resume: bool = False) -> None:
    """Fail (per job) outputs that would overwrite an input, collide, or exist without --overwrite.

    With `resume`, a job whose outputs all exist is marked 'skipped' (already done): writes are
    atomic, so an existing output is complete.
    """
    input_keys = {_resolve(j.input) for j in jobs}
    claimed: set[Path] = set()
    for job in jobs:
        outputs = [d for d in (job.output, job.compare) if d is not None]
        for dst in outputs:
            if job.status == "error":
                continue
            key = _resolve(dst)
            if key in input_keys:
                job.fail(OutputWriteError(f"refusing to overwrite input {dst}"))
            elif key in claimed:
                job.fail(OutputWriteError(f"{dst} is already the output of another input"))
            elif os.path.lexists(dst) and not (overwrite or resume):
                job.fail(OutputWriteError(
                    f"output {dst} exists (use --resume to skip finished files or --overwrite to replace it)"
                ))
            claimed.add(key)
        if resume and job.status == "pending" and outputs and all(os.path.lexists(d) for d in outputs):
            job.status = "skipped"


_PROBE_PREFIX = ".edge-restore-probe."


def _writable_folder(folder: Path) -> str | None:
    """None if a file can be created in `folder` (or where it would be created), else the reason."""
    probe_dir = folder
    while not probe_dir.exists():
        if probe_dir.parent == probe_dir:
            break
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        return f"{probe_dir} is not a folder"
    try:
        fd, name = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=probe_dir)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(name)
    return None


def preflight_outputs(jobs: list[Job], manifest: Path | None) -> None:
    """Check every output folder can be written before any heavy work (exit 73 if none can).

    Jobs writing to a folder that cannot be written fail with OutputWriteError; an unwritable
    manifest folder raises OutputWriteError for the whole run.
    """
    verdict: dict[Path, str | None] = {}

    def check(folder: Path) -> str | None:
        if folder not in verdict:
            verdict[folder] = _writable_folder(folder)
        return verdict[folder]

    if manifest is not None:
        why = check(manifest.parent) or _name_too_long(manifest)
        if why:
            raise OutputWriteError(f"cannot write manifest {manifest}: {why}")
    for job in jobs:
        if job.status != "pending":
            continue
        for dst in (job.output, job.compare):
            if dst is None:
                continue
            if why := _name_too_long(dst):
                job.fail(OutputWriteError(f"cannot write {dst}: {why}"))
                break
            if why := check(dst.parent):
                job.fail(OutputWriteError(f"cannot write {dst}: folder {dst.parent} is not writable ({why})"))
                break


def _name_too_long(path: Path) -> str | None:
    """Why the file name cannot be created (longer than the folder's file system takes), or None."""
    limit = NAME_MAX
    try:
        folder = path.parent
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        pass
    size = len(os.fsencode(path.name))
    return f"file name too long ({size} bytes; the file system takes {limit})" if size > limit else None


def check_manifest_path(manifest: Path, jobs: list[Job]) -> None:
    """The --json manifest obeys the rules of outputs: never an input or an output, never a
    symbolic link, FIFO, device or folder (it is replaced atomically, which would turn any of
    those into a regular file). OutputWriteError (73) before anything else is done."""
    def refuse(why: str) -> OutputWriteError:
        return OutputWriteError(f"cannot write manifest {manifest}: {why}")

    if manifest.is_symlink():
        raise refuse("it is a symbolic link")
    if manifest.exists():
        kind = _special_kind(manifest)
        if kind is not None:
            raise refuse(f"it is {kind}, not a regular file")
    key = _resolve(manifest)
    for job in jobs:
        if _resolve(job.input) == key:
            raise refuse(f"refusing to overwrite input {job.input}")
        if any(d is not None and _resolve(d) == key for d in (job.output, job.compare)):
            raise refuse("it is also an image output")


# atomic_write's temporary name: ".<name, maybe shortened>.<owner pid>.<8 random chars>.tmp"
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[A-Za-z0-9_]{8}\.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's live process (or not checkable): not ours to clean
    return True


def remove_stale_temps(targets: list[Path]) -> int:
    """Remove temporary files a killed run left beside these outputs; returns how many.

    Only files whose owner (the PID in the name) is dead: another run writing the same folder
    keeps its temporary files (issue 18: a second CLI deleted the first one's file in progress).
    """
    removed = 0
    by_folder: dict[Path, list[Path]] = {}
    for target in targets:
        by_folder.setdefault(target.parent, []).append(target)
    for folder, names in by_folder.items():
        try:
            entries = [e for e in os.scandir(folder) if e.name.endswith(".tmp") and e.name.startswith(".")]
        except OSError:
            continue
        for entry in entries:
            match = _TEMP_NAME.fullmatch(entry.name)
            if match is None or not any(t.name.startswith(match["name"]) for t in names):
                continue
            if not _pid_alive(int(match["pid"])) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
    if removed:
        log.warning("removed %d temporary file(s) left by an earlier run that was killed", removed)
    return removed
