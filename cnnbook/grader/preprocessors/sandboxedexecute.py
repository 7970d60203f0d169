"""SandboxedExecute: nbgrader's Execute in the sandboxed kernel, where a hung or dead kernel costs
one cell."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from time import monotonic

from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, List, Unicode

from cnnbook import sandbox
from cnnbook.grader.plan import ENV_THREADS, PLAN_KEY, STOPS_KEY, thread_env
from cnnbook.grader.preprocessors.capoutputs import ArrivalCaps, CappedKernelClient
from cnnbook.grader.preprocessors.readproberesults import DETAILS, STOPPED


class SandboxedExecute(Execute):
    """nbgrader's Execute in the ``cnnbook-sandbox`` kernel; a hung or dead kernel costs its own
    cell.

    After a cell hangs or kills its kernel, a fresh kernel re-runs the code cells above it (outputs
    discarded; cells that hung or died, and the grader's probe cells, skipped) and grading goes on
    with the next cell, so a function that loops forever only costs the checks that call it. After
    ``max_kernel_restarts`` restarts in one notebook, the cells after the next failure are marked as
    not run. Before the first kernel starts, the sandbox is checked: without a usable bubblewrap,
    grading stops with the reason (unless ``require_sandbox`` is off, for trusted submissions only).

    Time: each cell may run the assignment's ``CELL_SECONDS`` (its checks module, see
    :class:`cnnbook.grader.plan.Plan`; ``timeout`` when it declares none, or when ``timeout`` is
    smaller), and the whole notebook its ``NOTEBOOK_SECONDS``, counted from the start of the first
    kernel: every cell, probe cells, kernel restarts and replays. A cell gets at most the time the
    notebook has left; once that is used up, the remaining code cells are marked as not run. Why
    each probe cell was stopped goes to ``resources`` for :class:`ReadProbeResults`, in fixed words.
    """

    sandbox_kernel = Unicode(sandbox.KERNEL_NAME, help="Kernel that runs students' code.").tag(
        config=True
    )
    require_sandbox = Bool(
        True,
        help="Refuse to grade when bubblewrap cannot sandbox the kernel; "
        "False grades in the plain python3 kernel (trusted submissions only).",
    ).tag(config=True)
    max_kernel_restarts = Integer(
        sandbox.MAX_KERNEL_RESTARTS,
        help="Fresh kernels per notebook after a "
        "cell hangs or kills its kernel; each one re-runs the cells above.",
    ).tag(config=True)
    hidden_packages = List(
        Unicode(),
        help="Top-level packages the kernel may not import in every "
        "assignment (each assignment's checks add their own).",
    ).tag(config=True)
    fresh_kernel_tries = Integer(
        4,
        help="Tries to start a fresh kernel after a cell hung or killed its "
        "kernel, a few seconds apart.",
    ).tag(config=True)
    threads = Integer(
        0,
        help="Threads the student's kernel may use in numpy's BLAS, OpenMP and TensorFlow "
        "(OMP_NUM_THREADS and the like); 0: no limit. ps3's training in the grader's process gets "
        "the same limit.",
    ).tag(config=True)
    # How often nbclient looks at the clock while a replayed cell runs (its default, 5 s, would let
    # a replay overrun the notebook's time by as much).
    shell_timeout_interval = Integer(
        1, help="Seconds between checks of a replayed cell's time limit."
    ).tag(config=True)
    # After a hung cell's kernel is replaced, its output stream never ends: do not fail the
    # notebook.
    raise_on_iopub_timeout = Bool(False, help="Fail the notebook when output stops arriving.").tag(
        config=True
    )

    def _kernel_name(self) -> str:
        problem = sandbox.bwrap_problem()
        if problem is None:
            return self.sandbox_kernel
        if self.require_sandbox:
            raise sandbox.SandboxError(f"Refusing to autograde without a sandbox: {problem}")
        self.log.warning("Grading WITHOUT a sandbox (require_sandbox=False): %s", problem)
        return "python3"

    def create_kernel_manager(self):
        self.kernel_name = self._kernel  # ignore the kernelspec the student's notebook names
        km = super().create_kernel_manager()
        if self._kernel == self.sandbox_kernel:
            km.transport = "ipc"
            folder = Path(tempfile.gettempdir()) / f"cnnbook-kernel-{secrets.token_hex(8)}"
            km.ip = str(folder / "k")
            self._socket_dirs.append(folder)
        return km

    async def async_start_new_kernel(self, **kwargs):
        env = dict(kwargs.pop("env", None) or os.environ)
        env[sandbox.ENV_HIDDEN_PACKAGES] = ",".join(self._hidden)
        for name in sandbox.THREAD_VARIABLES:  # the grader's own settings are not the kernel's
            env.pop(name, None)
        env.update(thread_env(self.threads))
        return await super().async_start_new_kernel(env=env, **kwargs)

    # nbconvert's preprocess starts the kernel through the synchronous wrapper, which nbclient binds
    # to its own coroutine: bind it to this one.
    start_new_kernel = run_sync(async_start_new_kernel)

    def output(self, outs, msg, display_id, cell_index):
        # Past the output caps, outputs are counted and dropped as they arrive, not after the cell
        # ran: a kernel that floods output cannot fill the grader's memory.
        return ArrivalCaps.of(self).output(super().output, outs, msg, display_id, cell_index)

    async def async_start_new_kernel_client(self):
        # zmq refuses a message larger than CappedKernelClient.max_message_bytes before it is read.
        self.km.client_factory = CappedKernelClient
        return await super().async_start_new_kernel_client()

    start_new_kernel_client = run_sync(async_start_new_kernel_client)  # as start_new_kernel above

    def _error(self, cell, ename, evalue):
        cell.outputs.append(
            NotebookNode(
                output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
            )
        )

    def _time_left(self) -> float | None:
        return None if self._deadline is None else self._deadline - monotonic()

    def _time_is_up(self) -> bool:
        left = self._time_left()
        return left is not None and left <= 0

    def _no_time_left(self) -> str:
        return f"the notebook used all of the {self._notebook_seconds:g} s the grader allows"

    def _get_timeout(self, cell):
        """nbclient's limit for the cell (or message) it waits for: the cell limit, or the time the
        notebook has left when that is less. Also what the cell's error will say if it times out."""
        limit, left = self._cell_seconds, self._time_left()
        self._cut = left is not None and (limit is None or left < limit)
        if self._cut:
            self._timeout_words = f"this cell was stopped: {self._no_time_left()}"
            return max(left, 0.1)  # 0 would mean no limit at all
        self._timeout_words = (
            f"this cell ran longer than {limit:g} s and was stopped" if limit else ""
        )
        return limit

    async def _async_handle_timeout(self, timeout, cell=None):
        # An interrupt may be ignored (signal.SIG_IGN) and the kernel stays busy: stop here.
        raise CellTimeoutError(self._timeout_words)

    def _stop_for_time(self, index) -> None:
        """Mark the code cells from ``index`` on as not run: the notebook's time is used up."""
        self._stopped, self._stopped_for_time = self._no_time_left(), True
        self.log.error(
            "%s: the code cells from cell %s on are marked as not run",
            self._stopped.capitalize(),
            index,
        )

    def _record(self, cell, ename, evalue) -> None:
        """The error in the cell and, for a probe cell, the reason its probe has no result, in fixed
        words."""
        self._error(cell, ename, evalue)
        if self._plan is None or not self._plan.is_probe_cell(cell):
            return
        if ename == "CellTimeoutError" and self._cut:
            detail = f": {self._no_time_left()}"
        elif ename == "CellTimeoutError":
            detail = f" of {self._cell_seconds:g} s per cell (an endless loop?)"
        elif ename == "NotRun" and self._stopped_for_time:
            detail = f": {self._no_time_left()}"
        else:
            detail = DETAILS.get(ename, "")
        self._stops[cell.metadata["cnnbook"]["probe"]] = STOPPED[ename] + detail

    def preprocess_cell(self, cell, resources, index):
        if not self._stopped and cell.cell_type == "code" and self._time_is_up():
            self._stop_for_time(index)
        if self._stopped:
            if cell.cell_type == "code":
                self._record(cell, "NotRun", f"not run: {self._stopped}")
            return cell, resources
        if self._failed_cells and self._visible_test(cell):
            # The points come from the probe cells at the end; a visible test that calls the
            # function that just hung would hang too, and cost the time the probes of the other
            # functions need.
            self._error(
                cell,
                "Skipped",
                "not run: an earlier cell hung or killed the kernel, so the grader "
                "skips the visible tests after it; its own checks of every function still ran",
            )
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (DeadKernelError, CellTimeoutError, ValueError) as exc:
            # The enames are what cnnbook.grade_batch reports as "kernel died" / "cell timed out".
            # A ValueError comes from jupyter_client reading a message with a bad signature
            # (processes forked by the student's code write to the kernel's sockets): that kernel is
            # no use either.
            if isinstance(exc, ValueError):
                name, why = (
                    "DeadKernelError",
                    (
                        "the kernel sent a message that is not a valid Jupyter "
                        "message (processes forked by the notebook?) and was stopped"
                    ),
                )
            elif isinstance(exc, DeadKernelError):
                name, why = (
                    "DeadKernelError",
                    (
                        "the kernel died while running this cell (memory or CPU "
                        "limit, os._exit, or a crash)"
                    ),
                )
            else:
                name, why = "CellTimeoutError", self._timeout_words
            self._record(cell, name, why)
            self._failed_cells.add(index)
            self._replace_kernel(index, why)
            return cell, resources

    def _replace_kernel(self, failed_index, why):
        """Start a fresh kernel in the state the cells before ``failed_index`` left, or stop
        grading."""
        try:
            run_sync(self.km.shutdown_kernel)(now=True)
        except Exception as err:  # noqa: BLE001 - the kernel may be gone already
            self.log.warning("Could not shut the kernel down: %s", err)
        if self._time_is_up():
            return self._stop_for_time(failed_index + 1)
        if self._restarts >= self.max_kernel_restarts:
            self.log.error(
                "Cell %s: %s; %s kernel restarts used already, so the cells after it are "
                "marked as not run",
                failed_index,
                why,
                self._restarts,
            )
            self._stopped = (
                f"cell {failed_index} failed ({why}) after {self._restarts} kernel restarts, "
                f"the most the grader allows per notebook"
            )
            return
        self._restarts += 1
        self.log.warning(
            "Cell %s: %s; fresh kernel %s of %s re-runs the code cells above it, then "
            "grading goes on",
            failed_index,
            why,
            self._restarts,
            self.max_kernel_restarts,
        )
        replay_failure = run_sync(self._async_fresh_kernel)(failed_index)
        if replay_failure is not None:
            index, exc = replay_failure
            if self._time_is_up():
                return self._stop_for_time(failed_index + 1)
            self.log.error(
                "Cell %s failed again when re-run in a fresh kernel (%s); the cells after "
                "cell %s are marked as not run",
                index,
                exc,
                failed_index,
            )
            self._stopped = (
                f"cell {failed_index} failed ({why}), and cell {index} hung or killed the "
                f"fresh kernel when re-run before grading could go on"
                if index != failed_index
                else f"cell {failed_index} failed ({why}), and no fresh kernel could start"
            )

    def _replayed(self, index, cell) -> bool:
        return (
            cell.cell_type == "code"
            and bool(cell.source.strip())
            and index not in self._failed_cells
            and not (self._plan is not None and self._plan.is_probe_cell(cell))
            and not self._visible_test(cell)
        )

    def _visible_test(self, cell) -> bool:
        """A graded test cell of the notebook (not a probe cell): it decides nothing, the probes
        do."""
        meta = cell.metadata.get("nbgrader", {}) if cell.cell_type == "code" else {}
        return (
            self._plan is not None
            and not self._plan.is_probe_cell(cell)
            and bool(meta.get("grade"))
            and not meta.get("solution")
        )

    async def _async_start_fresh_kernel(self):
        """Start a new kernel; None, or the exception of the last of a few tries.

        The processes of the kernel just killed (a fork bomb's, say) count against the sandbox
        user's process limit until they are gone, so a new kernel may fail to start at first: wait
        and retry.
        """
        error = None
        for attempt in range(self.fresh_kernel_tries):
            if attempt and self._time_is_up():
                break
            try:
                await self._async_cleanup_kernel()
                self.km = self.create_kernel_manager()
                await self.async_start_new_kernel()
                await self.async_start_new_kernel_client()
                return None
            except (
                RuntimeError
            ) as exc:  # jupyter_client: "Kernel died before replying to kernel_info"
                error = exc
                self.log.warning("A fresh kernel failed to start (try %s): %s", attempt + 1, exc)
                await asyncio.sleep(2 * (attempt + 1))
        return error

    async def _async_fresh_kernel(self, failed_index):
        """Start a new kernel and re-run the code cells before ``failed_index`` that did not fail.

        Their outputs are not recorded: the cells keep those of their graded run. Returns None, or
        (index, exception) of a cell that hung or killed the kernel when re-run (exception None: the
        notebook's time ran out first).
        """
        started = await self._async_start_fresh_kernel()
        if started is not None:
            return failed_index, started
        for index, cell in enumerate(self.nb.cells[:failed_index]):
            if not self._replayed(index, cell):
                continue
            if self._time_is_up():
                return index, None
            msg_id = await ensure_async(self.kc.execute(cell.source, stop_on_error=False))
            try:
                await self.async_wait_for_reply(msg_id, cell)
            except (
                DeadKernelError,
                CellTimeoutError,
                ValueError,
            ) as exc:  # ValueError: see preprocess_cell
                return index, exc
        return None

    def _limits(self, plan) -> None:
        """This notebook's limits: per cell (the smaller of ``timeout`` and the plan's), and its
        deadline."""
        limits = [
            self.timeout if self.timeout and self.timeout > 0 else None,
            plan and plan.cell_seconds,
        ]
        self._cell_seconds = min((limit for limit in limits if limit), default=None)
        self._notebook_seconds = plan.notebook_seconds if plan else None
        self._deadline = (
            None if self._notebook_seconds is None else monotonic() + self._notebook_seconds
        )
        self._stopped_for_time, self._cut, self._timeout_words = False, False, ""

    def preprocess(self, nb, resources=None, km=None):
        resources = {} if resources is None else resources
        self._stopped, self._restarts, self._failed_cells, self._socket_dirs = None, 0, set(), []
        self._plan = plan = resources.get(PLAN_KEY)
        resources[STOPS_KEY] = self._stops = {}
        self._limits(plan)
        # For the checks that run after this in the grader's process (ps3's trainer, see
        # plan.grader_threads).
        os.environ[ENV_THREADS] = str(self.threads)
        self._hidden = sorted({*self.hidden_packages, *(plan.hidden_packages if plan else ())})
        self._kernel = self._kernel_name()
        try:
            return super().preprocess(nb, resources, km)
        finally:
            for folder in self._socket_dirs:
                shutil.rmtree(folder, ignore_errors=True)
