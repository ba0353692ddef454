"""pecapi.testing: a stateful emulator of the PEC API for tests, demos and benchmarks.

>>> from pecapi.testing import Emulator, DEFAULT_TOKEN
>>> emu = Emulator()                       # sandbox, DEFAULT_TOKEN with every scope
>>> async with emu.serve() as server:      # doctest: +SKIP
...     print(server.url)                  # http://127.0.0.1:<port>

Drive a running one over HTTP under ``/_emulator/`` (:mod:`pecapi.testing.admin`).
See ``pecapi/testing/README.md``.
"""

from __future__ import annotations

from .account import DEFAULT_TOKEN
from .admin import ADMIN_PREFIX
from .callbacks import CallbackDeliverer, Delivery
from .emulator import Emulator, RunningEmulator
from .errors import DOCUMENTED_CODES, INVENTED_CODES, ErrorCode
from .faults import TRANSIENT_FAULTS, Fault, FaultPlan, FaultRule
from .late import LateCommits
from .ledger import DEFAULT_REGISTER_PRICES, Charge, PriceList, RequestRecord
from .oauth import IssuedToken, OAuthEmulator, RunningOAuth
from .oauth_v2 import IssuedTokenV2, OAuthV2Emulator, RunningOAuthV2
from .pdf import make_pdf
from .rules import DEFAULT_SPACES

__all__ = [
    "ADMIN_PREFIX",
    "DEFAULT_REGISTER_PRICES",
    "DEFAULT_SPACES",
    "DEFAULT_TOKEN",
    "DOCUMENTED_CODES",
    "INVENTED_CODES",
    "TRANSIENT_FAULTS",
    "CallbackDeliverer",
    "Charge",
    "Delivery",
    "Emulator",
    "ErrorCode",
    "Fault",
    "FaultPlan",
    "FaultRule",
    "IssuedToken",
    "IssuedTokenV2",
    "LateCommits",
    "OAuthEmulator",
    "OAuthV2Emulator",
    "PriceList",
    "RequestRecord",
    "RunningEmulator",
    "RunningOAuth",
    "RunningOAuthV2",
    "make_pdf",
]
