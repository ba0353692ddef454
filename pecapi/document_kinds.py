"""What a document must be: a PDF or a p7m, told apart by the first :data:`HEAD_SIZE` bytes.

:func:`check_kind` is the check :func:`~pecapi.documents.prepare_documents` makes on
each document's head, with the message naming the document at fault.
"""

from __future__ import annotations

import base64
import binascii
import enum
from typing import Final

from pecapi.errors import ValidationError

__all__ = ["HEAD_SIZE", "DocumentKind", "check_kind"]

#: How much of each document is read to check its kind.
HEAD_SIZE: Final = 1024

_PDF_MAGIC: Final = b"%PDF-"
_P7M_OID: Final = bytes.fromhex("06092a864886f70d010702")  # 1.2.840.113549.1.7.2 signedData
_P7M_OID_WINDOW: Final = 64
_PEM_HEADERS: Final = (b"-----BEGIN PKCS7", b"-----BEGIN CMS")
_WHITESPACE: Final = b" \t\r\n\f\v"
#: Characters of base64 text decoded to look for DER signedData (enough for the window).
_B64_PROBE: Final = 128


class DocumentKind(enum.Enum):
    """What an operation accepts, with the check made on each document's first bytes."""

    PDF = "pdf"
    P7M = "p7m"

    @property
    def description(self) -> str:
        return "a PDF" if self is DocumentKind.PDF else "a p7m file (PKCS#7 signed data)"

    @property
    def _expectation(self) -> str:
        if self is DocumentKind.PDF:
            return f"no %PDF- header in its first {HEAD_SIZE} bytes"
        return (
            "neither DER signedData (0x30 and the OID 1.2.840.113549.1.7.2 in the first "
            f"{_P7M_OID_WINDOW} bytes) nor PEM text starting with -----BEGIN PKCS7 "
            "or -----BEGIN CMS"
        )

    def matches(self, head: bytes) -> bool:
        """Whether ``head`` (the first bytes of a document) looks like this kind."""
        head = head[:HEAD_SIZE]
        if self is DocumentKind.PDF:
            # A .p7m wrapping a PDF holds the PDF's header in its first KB: not a PDF.
            return _PDF_MAGIC in head and not _signed_data(head)
        # DER or PEM only: bare base64 text (``MII...``) is not taken as a p7m.
        return _signed_data(head, base64_text=False)


def _is_der_signed_data(head: bytes) -> bool:
    return head[:1] == b"\x30" and _P7M_OID in head[:_P7M_OID_WINDOW]


def _signed_data(head: bytes, *, base64_text: bool = True) -> bool:
    """Whether ``head`` starts CMS/PKCS#7 signed data (a .p7m): DER, PEM, or (with
    ``base64_text``) the DER in base64 (``MII...``: how a .p7m saved as text begins)."""
    if _is_der_signed_data(head):
        return True
    text = head.lstrip(_WHITESPACE)
    if text.startswith(_PEM_HEADERS):
        return True
    if not base64_text or not text.startswith(b"MI"):  # base64 of 0x30 and a length byte
        return False
    chunk = b"".join(text[:_B64_PROBE].split())
    try:
        der = base64.b64decode(chunk[: len(chunk) // 4 * 4], validate=True)
    except (binascii.Error, ValueError):
        return False
    return _is_der_signed_data(der)


def check_kind(head: bytes, kind: DocumentKind, label: str, field: str) -> None:
    """Raise :class:`ValidationError` (``field``, naming ``label``) unless ``head`` is
    the start of a ``kind`` document."""
    if kind is DocumentKind.PDF and _signed_data(head[:HEAD_SIZE]):
        raise ValidationError(
            field,
            f"{label} is a signed .p7m envelope (CMS signed data): the API wants the PDF "
            "itself, not the .p7m",
        )
    if not kind.matches(head):
        raise ValidationError(field, f"{label} is not {kind.description}: {kind._expectation}")
