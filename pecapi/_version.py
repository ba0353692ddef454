"""The version of pecapi, in a module that imports nothing.

Read by hatchling for the package's metadata (``[tool.hatch.version]``) and imported by
the modules that need it (the pipeline's User-Agent, the command's ``--version``) without
importing the package's ``__init__`` (an import cycle: it imports them).
"""

__version__ = "0.1.0"
