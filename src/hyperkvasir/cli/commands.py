"""Every sub-command of ``hyperkvasir``, registered on the one app in the order ``--help`` lists them: the data
stages, then one module per task, then the benchmark and the demo."""

from hyperkvasir.cli import acquire, data  # noqa: F401, I001  (registration order is the import order)
from hyperkvasir.cli import classify, segment, video  # noqa: F401
from hyperkvasir.cli import predict  # noqa: F401
from hyperkvasir.cli import label  # noqa: F401
from hyperkvasir.cli import benchmark, demo  # noqa: F401
from hyperkvasir.cli import review  # noqa: F401
from hyperkvasir.cli.common import app

__all__ = ["app"]
