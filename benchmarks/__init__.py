"""pecapi's benchmark suite: ``python -m benchmarks`` (see ``benchmarks/README.md``).

Every figure is a ratio against a baseline measured in the same run, on the same
emulator (``pecapi.testing.Emulator``) served on loopback by a separate process.
"""
