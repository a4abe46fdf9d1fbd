import importlib
import sys

from edge_runtime.extras import run_with_extra

# Without its extra, one line naming it (exit 78) instead of a traceback.
sys.exit(run_with_extra("python -m train", "train",
                        lambda: importlib.import_module(".cli", __package__).main))
