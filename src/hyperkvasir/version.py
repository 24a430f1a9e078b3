"""The toolkit's version, in a module of its own: modules that record it (checkpoints, provenance, the report)
import it without importing the package's notebook face (``hyperkvasir.api``)."""

__version__ = "0.2.0"
