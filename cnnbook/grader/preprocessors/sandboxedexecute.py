"""SandboxedExecute: nbgrader's Execute in the sandboxed kernel, where a hung or dead kernel costs one cell."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, List, Unicode

from cnnbook import sandbox
from cnnbook.grader.plan import PLAN_KEY
from cnnbook.grader.preprocessors.capoutputs import ArrivalCaps, CappedKernelClient


class SandboxedExecute(Execute):
    """nbgrader's Execute in the ``cnnbook-sandbox`` kernel; a hung or dead kernel costs its own cell.

    After a cell hangs or kills its kernel, a fresh kernel re-runs the code cells above it (outputs
    discarded; cells that hung or died, and the grader's probe cells, skipped) and grading goes on with
    the next cell, so a function that loops forever only costs the checks that call it. After
    ``max_kernel_restarts`` restarts in one notebook, the cells after the next failure are marked as
    not run. Before the first kernel starts, the sandbox is checked: without a usable bubblewrap,
    grading stops with the reason (unless ``require_sandbox`` is off, for trusted submissions only).
    """

    sandbox_kernel = Unicode(sandbox.KERNEL_NAME, help="Kernel that runs students' code.").tag(config=True)
    require_sandbox = Bool(True, help="Refuse to grade when bubblewrap cannot sandbox the kernel; "
                           "False grades in the plain python3 kernel (trusted submissions only).").tag(
                               config=True)
    max_kernel_restarts = Integer(sandbox.MAX_KERNEL_RESTARTS, help="Fresh kernels per notebook after a "
                                  "cell hangs or kills its kernel; each one re-runs the cells above.").tag(
                                      config=True)
    hidden_packages = List(Unicode(), help="Top-level packages the kernel may not import in every "
                           "assignment (each assignment's checks add their own).").tag(config=True)
    fresh_kernel_tries = Integer(4, help="Tries to start a fresh kernel after a cell hung or killed its "
                                 "kernel, a few seconds apart.").tag(config=True)
    # After a hung cell's kernel is replaced, its output stream never ends: do not fail the notebook.
    raise_on_iopub_timeout = Bool(False, help="Fail the notebook when output stops arriving.").tag(
        config=True)

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
        return await super().async_start_new_kernel(env=env, **kwargs)

    # nbconvert's preprocess starts the kernel through the synchronous wrapper, which nbclient binds
    # to its own coroutine: bind it to this one.
    start_new_kernel = run_sync(async_start_new_kernel)

    def output(self, outs, msg, display_id, cell_index):
        # Past the output caps, outputs are counted and dropped as they arrive, not after the cell ran:
        # a kernel that floods output cannot fill the grader's memory.
        return ArrivalCaps.of(self).output(super().output, outs, msg, display_id, cell_index)

    async def async_start_new_kernel_client(self):
        # zmq refuses a message larger than CappedKernelClient.max_message_bytes before it is read.
        self.km.client_factory = CappedKernelClient
        return await super().async_start_new_kernel_client()

    start_new_kernel_client = run_sync(async_start_new_kernel_client)  # as start_new_kernel above

    def _error(self, cell, ename, evalue):
        cell.outputs.append(NotebookNode(output_type="error", ename=ename, evalue=evalue,
                                         traceback=[f"{ename}: {evalue}"]))

    async def _async_handle_timeout(self, timeout, cell=None):
        # An interrupt may be ignored (signal.SIG_IGN) and the kernel stays busy: stop here.
        raise CellTimeoutError(f"this cell ran longer than {timeout} s and was stopped")

    def preprocess_cell(self, cell, resources, index):
        if self._stopped:
            if cell.cell_type == "code":
                self._error(cell, "NotRun", f"not run: {self._stopped}")
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (DeadKernelError, CellTimeoutError, ValueError) as exc:
            # The enames are what cnnbook.grade_batch reports as "kernel died" / "cell timed out".
            # A ValueError comes from jupyter_client reading a message with a bad signature (processes
            # forked by the student's code write to the kernel's sockets): that kernel is no use either.
            if isinstance(exc, ValueError):
                name, why = "DeadKernelError", ("the kernel sent a message that is not a valid Jupyter "
                                                "message (processes forked by the notebook?) and was stopped")
            elif isinstance(exc, DeadKernelError):
                name, why = "DeadKernelError", ("the kernel died while running this cell (memory or CPU "
                                                "limit, os._exit, or a crash)")
            else:
                name, why = "CellTimeoutError", f"this cell ran longer than {self.timeout} s and was stopped"
            self._error(cell, name, why)
            self._failed_cells.add(index)
            self._replace_kernel(index, why)
            return cell, resources

    def _replace_kernel(self, failed_index, why):
        """Start a fresh kernel in the state the cells before ``failed_index`` left, or stop grading."""
        try:
            run_sync(self.km.shutdown_kernel)(now=True)
        except Exception as err:  # noqa: BLE001 - the kernel may be gone already
            self.log.warning("Could not shut the kernel down: %s", err)
        if self._restarts >= self.max_kernel_restarts:
            self.log.error("Cell %s: %s; %s kernel restarts used already, so the cells after it are "
                           "marked as not run", failed_index, why, self._restarts)
            self._stopped = (f"cell {failed_index} failed ({why}) after {self._restarts} kernel restarts, "
                             f"the most the grader allows per notebook")
            return
        self._restarts += 1
        self.log.warning("Cell %s: %s; fresh kernel %s of %s re-runs the code cells above it, then "
                         "grading goes on", failed_index, why, self._restarts, self.max_kernel_restarts)
        replay_failure = run_sync(self._async_fresh_kernel)(failed_index)
        if replay_failure is not None:
            index, exc = replay_failure
            self.log.error("Cell %s failed again when re-run in a fresh kernel (%s); the cells after "
                           "cell %s are marked as not run", index, exc, failed_index)
            self._stopped = (f"cell {failed_index} failed ({why}), and cell {index} hung or killed the "
                             f"fresh kernel when re-run before grading could go on" if index != failed_index
                             else f"cell {failed_index} failed ({why}), and no fresh kernel could start")

    def _replayed(self, index, cell) -> bool:
        return (cell.cell_type == "code" and bool(cell.source.strip()) and index not in self._failed_cells
                and not (self._plan is not None and self._plan.is_probe_cell(cell)))

    async def _async_start_fresh_kernel(self):
        """Start a new kernel; None, or the exception of the last of a few tries.

        The processes of the kernel just killed (a fork bomb's, say) count against the sandbox user's
        process limit until they are gone, so a new kernel may fail to start at first: wait and retry.
        """
        error = None
        for attempt in range(self.fresh_kernel_tries):
            try:
                await self._async_cleanup_kernel()
                self.km = self.create_kernel_manager()
                await self.async_start_new_kernel()
                await self.async_start_new_kernel_client()
                return None
            except RuntimeError as exc:  # jupyter_client: "Kernel died before replying to kernel_info"
                error = exc
                self.log.warning("A fresh kernel failed to start (try %s): %s", attempt + 1, exc)
                await asyncio.sleep(2 * (attempt + 1))
        return error

    async def _async_fresh_kernel(self, failed_index):
        """Start a new kernel and re-run the code cells before ``failed_index`` that did not fail.

        Their outputs are not recorded: the cells keep those of their graded run. Returns None, or
        (index, exception) of a cell that hung or killed the kernel when re-run.
        """
        started = await self._async_start_fresh_kernel()
        if started is not None:
            return failed_index, started
        for index, cell in enumerate(self.nb.cells[:failed_index]):
            if not self._replayed(index, cell):
                continue
            msg_id = await ensure_async(self.kc.execute(cell.source, stop_on_error=False))
            try:
                await self.async_wait_for_reply(msg_id, cell)
            except (DeadKernelError, CellTimeoutError, ValueError) as exc:  # ValueError: see preprocess_cell
                return index, exc
        return None

    def preprocess(self, nb, resources=None, km=None):
        self._stopped, self._restarts, self._failed_cells, self._socket_dirs = None, 0, set(), []
        self._plan = plan = (resources or {}).get(PLAN_KEY)
        self._hidden = sorted({*self.hidden_packages, *(plan.hidden_packages if plan else ())})
        self._kernel = self._kernel_name()
        try:
            return super().preprocess(nb, resources, km)
        finally:
            for folder in self._socket_dirs:
                shutil.rmtree(folder, ignore_errors=True)
