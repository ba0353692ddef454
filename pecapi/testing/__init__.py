"""pecapi.testing: a stateful emulator of the PEC API for tests, demos and benchmarks.

>>> from pecapi.testing import Emulator, DEFAULT_TOKEN
>>> emu = Emulator()                       # sandbox, DEFAULT_TOKEN with every scope
>>> async with emu.serve() as server:      # doctest: +SKIP
...     print(server.url)                  # http://127.0.0.1:<port>

See ``pecapi/testing/README.md``.
"""

from __future__ import annotations

from .account import DEFAULT_TOKEN
from .callbacks import CallbackDeliverer, Delivery
from .emulator import Emulator, RunningEmulator
from .errors import DOCUMENTED_CODES, INVENTED_CODES, ErrorCode
from .faults import Fault, FaultPlan
from .late import LateCommits
from .ledger import DEFAULT_REGISTER_PRICES, Charge, PriceList, RequestRecord
from .oauth import IssuedToken, OAuthEmulator, RunningOAuth
from .pdf import make_pdf
from .rules import DEFAULT_SPACES

__all__ = [
    "DEFAULT_REGISTER_PRICES",
    "DEFAULT_SPACES",
    "DEFAULT_TOKEN",
    "DOCUMENTED_CODES",
    "INVENTED_CODES",
    "CallbackDeliverer",
    "Charge",
    "Delivery",
    "Emulator",
    "ErrorCode",
    "Fault",
    "FaultPlan",
    "IssuedToken",
    "LateCommits",
    "OAuthEmulator",
    "PriceList",
    "RequestRecord",
    "RunningEmulator",
    "RunningOAuth",
    "make_pdf",
]
