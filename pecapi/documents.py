"""Documents to upload: checked before anything is sent, then streamed as base64 in JSON.

Several operations take documents as base64 strings inside a JSON body::

    PATCH /pec/{id}/attivazione      {"documenti": ["<base64 pdf>", ...]}
    PATCH /pec/{id}/conservazione    {"documenti": [...], "spazio_conservazione": 512}
    PATCH /comunica_pec/{id}         {"documenti": ["<base64 p7m>"]}

:func:`prepare_documents` turns what the caller gave (paths, bytes, binary file objects,
or a list of them) into a :class:`DocumentSet`, reading only the head of each file to
check that it is what the API wants (:class:`DocumentKind`). Every bad input raises
:class:`~pecapi.errors.ValidationError` naming the document at fault.

:meth:`DocumentSet.body` then makes a :class:`DocumentsPayload`, an aiohttp payload that
writes the JSON object with an exact ``size`` (so aiohttp sends ``Content-Length``) and
base64-encodes each document chunk by chunk straight from disk: a 100 MB PDF is never
held in memory, the memory used while sending is a few hundred KB whatever the size.

Where it lives: :mod:`pecapi.document_kinds` (what a PDF or a p7m looks like),
:mod:`pecapi.document_inputs` (what a caller may give, and :func:`prepare_documents`),
:mod:`pecapi.document_sources` (a checked :class:`Document` and reading it back) and
:mod:`pecapi.document_payload` (:class:`DocumentSet` and the streamed body). Import
from here: this module is the public face of all four.
"""

from __future__ import annotations

from pecapi.document_inputs import DocumentInput, Documents, prepare_documents
from pecapi.document_kinds import HEAD_SIZE as HEAD_SIZE
from pecapi.document_kinds import DocumentKind
from pecapi.document_payload import CHUNK_SIZE, DocumentSet, DocumentsPayload
from pecapi.document_payload import MAX_IN_MEMORY_BODY as MAX_IN_MEMORY_BODY
from pecapi.document_sources import Document

__all__ = [
    "CHUNK_SIZE",
    "Document",
    "DocumentInput",
    "DocumentKind",
    "DocumentSet",
    "Documents",
    "DocumentsPayload",
    "prepare_documents",
]
