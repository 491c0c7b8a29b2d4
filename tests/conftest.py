import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# A shell starts a background job (`pytest ... &`) with SIGINT and SIGQUIT ignored, and an ignored
# signal stays ignored across exec: the child processes that the signal tests interrupt would then
# never see their Ctrl-C (latbench rightly leaves an ignored signal alone). Give this process the
# ordinary disposition so its children start with it, as they do under an interactive shell or CI.
import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# nohup ignores SIGHUP the same way; a Python-level handler that does nothing keeps this process
# immune to a hangup while its children, after exec, start with the default disposition.
if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
    signal.signal(signal.SIGHUP, lambda signum, frame: None)
